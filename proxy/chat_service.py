"""POST /v1/chat/completions (and /v1/completions when enabled): policy -> upstream -> recovery
watch -> client.

The route stays thin; this module checks the request: the body against its endpoint's prefill
policy and the verified history of earlier turns, then sets up the upstream request (always
streamed, so one watched path serves streamed and non-streamed clients) and the relay that
watches it. `proxy.answer` carries the answer to the client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from starlette.responses import Response
from starlette.types import Receive

from proxy.answer import Answer, Clock
from proxy.config import Settings
from proxy.endpoints import CHAT, Endpoint
from proxy.errors import APIError
from proxy.event_stream import ClientGone
from proxy.history import HistoryStore
from proxy.metrics import Metrics
from proxy.policy import ControlTokenMatcher, PolicyContext, PolicyViolation, check_rendered_prompt
from proxy.policy.history import digest, message_records, turns_to_verify, unverified
from proxy.relay import AnswerRelay
from proxy.upstream import Upstream
from proxy.watch import Outcome, RefusalDetector, observe, recovery_log_record

log = logging.getLogger("deepguard.chat")


@dataclass
class ChatService:
    upstream: Upstream
    metrics: Metrics
    detector: RefusalDetector
    control_tokens: ControlTokenMatcher
    settings: Settings
    # Verified history (policy.history: verified): the record store and its HMAC key.
    history: HistoryStore | None = None
    history_secret: bytes = b""

    async def handle(
        self,
        raw_body: bytes,
        served_model: str,
        allow_prefill: bool,
        request_id: str,
        received_at: float,
        receive: Receive,
        endpoint: Endpoint = CHAT,
        key_id: str = "",
    ) -> Response:
        clock = Clock()
        try:
            body = orjson.loads(raw_body)
        except orjson.JSONDecodeError as exc:
            raise APIError(
                400,
                f"the request body is not valid JSON: {exc}",
                param=None,
                code="invalid_json",
                headers={"x-should-retry": "false"},
            ) from None
        ctx = PolicyContext(
            self.settings.policy, self.control_tokens, served_model, allow_prefill=allow_prefill
        )
        try:
            upstream_body = endpoint.check_request(body, ctx)
            verify = (
                endpoint.keeps_history
                and self.history is not None
                and not allow_prefill
                and ctx.settings.history == "verified"
            )
            if verify:
                await self._verify_history(upstream_body["messages"], key_id)
        except PolicyViolation as v:
            self.metrics.policy_rejections.labels(served_model, v.vector).inc()
            raise v.as_api_error() from None

        client_stream = bool(upstream_body.get("stream"))
        client_usage = bool((upstream_body.get("stream_options") or {}).get("include_usage"))
        # The proxy always streams from the upstream and asks for what it needs to check the
        # answer's start; neither reaches the client.
        upstream_body["stream"] = True
        upstream_body["stream_options"] = {"include_usage": True}
        upstream_body["return_token_ids"] = True
        check_prompt = None
        if endpoint.checks_rendered_prompt:
            upstream_body["return_prompt_text"] = True
            messages = upstream_body["messages"]

            def check_prompt(
                prompt_text: str | None, prompt_token_ids: list | None
            ) -> PolicyViolation | None:
                return check_rendered_prompt(prompt_text, messages, ctx, prompt_token_ids)

        watch = self.settings.watch

        def on_outcome(index: int, outcome: Outcome, text: str) -> None:
            observe(self.metrics, served_model, outcome)
            if outcome.kind == "recovered":
                record = recovery_log_record(
                    request_id,
                    index,
                    served_model,
                    outcome,
                    watch.hold_back_tokens,
                    text if watch.log_answer_text else None,
                )
                log.info("%s", orjson.dumps(record).decode())

        json_answer = (upstream_body.get("response_format") or {}).get("type") in (
            "json_object",
            "json_schema",
        )
        relay = AnswerRelay(
            self.detector,
            watch.start_window,
            watch.hold_back_tokens,
            served_model,
            check_prompt,
            on_outcome,
            mode=endpoint.relay_mode,
            json_answer=json_answer,
            logprobs_withheld_tokens=ctx.settings.logprobs_withheld_tokens,
        )
        remember = None
        if self.history is not None and endpoint.keeps_history:

            async def remember(relay: AnswerRelay) -> None:
                await self.record_history(relay, key_id)

        answer = Answer(
            self.upstream,
            self.metrics,
            endpoint,
            relay,
            served_model,
            request_id,
            received_at,
            clock,
            upstream_body,
            client_usage,
            remember,
        )
        try:
            if client_stream:
                return await answer.streaming_response(receive)
            return await answer.json_response(receive)
        except ClientGone:
            answer.done(499)  # nginx's "client closed request"; nobody reads this response
            return Response(status_code=499)

    async def _verify_history(self, messages: list[dict], key_id: str) -> None:
        turns = turns_to_verify(messages, self.history_secret, key_id)
        if not turns:
            return
        flat = [d for _, digests in turns for d in digests]
        try:
            missing = await self.history.missing(flat)
        except Exception as exc:  # the store is down: fail closed, but as our own 503
            log.warning("history store unavailable: %s", exc)
            raise APIError(
                503,
                "the conversation history could not be verified right now; retry shortly",
                "server_error",
                None,
                "history_unavailable",
                {"retry-after": "1"},
            ) from None
        if missing:
            first, seen = missing[0], 0
            for index, digests in turns:
                if first < seen + len(digests):
                    raise unverified(index)
                seen += len(digests)

    async def record_history(self, relay: AnswerRelay, key_id: str) -> None:
        """Remember what each finished choice gave the client, for its next request."""
        digests = [
            digest(self.history_secret, key_id, record)
            for state in relay.choice_states().values()
            for record in message_records(state.released_message())
        ]
        if not digests:
            return
        try:
            await self.history.add(digests)
        except Exception as exc:  # the answer itself is fine; its follow-up will be refused
            log.warning("history store unavailable, answer not recorded: %s", exc)
