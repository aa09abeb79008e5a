"""POST /v1/chat/completions (and /v1/completions when enabled): policy -> upstream -> recovery
watch -> client.

The route stays thin; this module holds the request's life: check the body against the prefill
policy, stream from the upstream (always, so one watched path serves streamed and non-streamed
clients), verify the rendered prompt in the first chunk, relay chunks through the watch, and
record metrics. Time spent waiting on the upstream or on the client is excluded from
`deepguard_proxy_overhead_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive

from proxy.errors import APIError
from proxy.event_stream import SSE_DONE, ClientGone, EventStreamResponse, cancel_on_disconnect, sse
from proxy.history import HistoryStore
from proxy.metrics import Metrics
from proxy.policy import (
    ControlTokenMatcher,
    PolicyContext,
    PolicyViolation,
    check_chat_request,
    check_completions_request,
    check_rendered_prompt,
)
from proxy.policy.history import digest, message_records, turns_to_verify, unverified
from proxy.relay import AnswerRelay, aggregate, aggregate_text, carries_content
from proxy.upstream import Upstream, UpstreamError
from proxy.watch import Outcome, RefusalDetector, observe, recovery_log_record

log = logging.getLogger("deepguard.chat")
CHAT_ROUTE = "/v1/chat/completions"
COMPLETIONS_ROUTE = "/v1/completions"


# Our own words for upstream failures: the upstream's text can name internals (paths, versions,
# other requests' details) and is logged instead, not forwarded.
_UPSTREAM_MESSAGES = {
    "client_error": "the model server rejected the request (for example, the prompt and "
    "max_tokens exceed the model's context length)",
    "rate_limited": "the model server is busy; retry shortly",
    "auth": "the proxy could not authenticate to the model server",
    "server_error": "the model server failed while answering",
    "stream_error": "the model server failed while answering",
    "bad_status": "the model server answered with an unexpected status",
}


def own_upstream_error(exc: UpstreamError) -> APIError:
    """The client's view of an upstream failure: status and code kept, message our own."""
    err = exc.to_api_error()
    message = _UPSTREAM_MESSAGES.get(exc.kind)
    if message is not None:
        err.message = message
        err.param = None
    return err


class Clock:
    """Adds up the time the proxy itself works on a request, between waits."""

    def __init__(self) -> None:
        self.busy = 0.0
        self._since: float | None = time.perf_counter()

    def pause(self) -> None:
        if self._since is not None:
            self.busy += time.perf_counter() - self._since
            self._since = None

    def resume(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()


@dataclass
class ChatService:
    upstream: Upstream
    metrics: Metrics
    detector: RefusalDetector
    control_tokens: ControlTokenMatcher
    settings: Any  # proxy.config.Settings
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
        route: str = CHAT_ROUTE,
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
        check_request = check_chat_request if route == CHAT_ROUTE else check_completions_request
        try:
            upstream_body = check_request(body, ctx)
            verify = (
                route == CHAT_ROUTE
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
        if route == CHAT_ROUTE:
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
            mode="chat" if route == CHAT_ROUTE else "text",
            json_answer=json_answer,
            logprobs_withheld_tokens=ctx.settings.logprobs_withheld_tokens,
        )
        answer = Answer(
            self,
            relay,
            served_model,
            request_id,
            received_at,
            clock,
            upstream_body,
            client_usage,
            route,
            key_id if route == CHAT_ROUTE else None,
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


class Answer:
    """One request's upstream stream and its way to the client."""

    def __init__(
        self,
        service: ChatService,
        relay: AnswerRelay,
        served_model: str,
        request_id: str,
        received_at: float,
        clock: Clock,
        upstream_body: dict,
        client_usage: bool,
        route: str,
        history_key: str | None = None,
    ) -> None:
        self.s = service
        self.relay = relay
        self.model = served_model
        self.request_id = request_id
        self.received_at = received_at
        self.clock = clock
        self.upstream_body = upstream_body
        self.client_usage = client_usage
        self.route = route
        self.history_key = history_key
        self.first_content_at: float | None = None

    # -- upstream -------------------------------------------------------------------------------
    async def _client_batches(self) -> AsyncIterator[list[dict]]:
        """Client chunks in order, grouped as their upstream chunks arrived together (one write
        to the client per group); raises APIError for upstream failures and prompt mismatches."""
        try:
            async with self.s.upstream.stream_chat(
                self.upstream_body, self.request_id, self.route, batched=True
            ) as batches:
                while True:
                    self.clock.pause()
                    try:
                        batch = await anext(batches)
                    except StopAsyncIteration:
                        self.clock.resume()
                        break
                    self.clock.resume()
                    out: list[dict] = []
                    try:
                        for chunk in batch:
                            out += self.relay.on_chunk(chunk)
                    except PolicyViolation as v:
                        # Caught in the first chunk, before any content reached the client.
                        self.s.metrics.policy_rejections.labels(self.model, v.vector).inc()
                        log.warning(
                            "rendered prompt rejected: %s (request %s)", v.code, self.request_id
                        )
                        raise v.as_api_error() from None
                    if out:
                        yield out
            out = self.relay.finish()
            if self.s.history is not None and self.history_key is not None:
                # Recorded before the last chunks go out: a client that has the whole answer
                # can send it back at once.
                await self.s.record_history(self.relay, self.history_key)
            if out:
                yield out
        except UpstreamError as exc:
            self.s.metrics.upstream_errors.labels(self.model, exc.kind).inc()
            log.warning(
                "upstream error (request %s): %s %s", self.request_id, exc.kind, exc.message
            )
            raise own_upstream_error(exc) from None
        except orjson.JSONEncodeError as exc:
            # The policy bounds every value it passes, so this should not happen; if it does,
            # it is the request's shape, a 400, never a 500 the client would retry.
            log.warning("request body could not be encoded (request %s): %s", self.request_id, exc)
            raise APIError(
                400,
                "the request could not be encoded for the model server (too "
                "deeply nested or out-of-range values)",
                "invalid_request_error",
                None,
                "unencodable_request",
                {"x-should-retry": "false"},
            ) from None

    def _mark_first_content(self, chunk: dict) -> None:
        if self.first_content_at is None and carries_content(chunk):
            self.first_content_at = time.perf_counter()
            self.s.metrics.ttft.labels(self.model).observe(self.first_content_at - self.received_at)

    def _headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.request_id}
        if self.relay.suppressed:
            headers["x-deepguard-recovery"] = "suppressed"
        return headers

    def done(self, status: int) -> None:
        self.clock.pause()
        m = self.s.metrics
        m.requests.labels(self.model, self.route, str(status)).inc()
        m.request_duration.labels(self.model, self.route).observe(
            time.perf_counter() - self.received_at
        )
        m.proxy_overhead.labels(self.model).observe(self.clock.busy)

    # -- non-streamed client ----------------------------------------------------------------
    async def json_response(self, receive: Receive) -> Response:
        async def collect() -> list[dict]:
            return [c async for batch in self._client_batches() for c in batch]

        try:
            chunks = await cancel_on_disconnect(receive, collect())
        except APIError as err:
            self.done(err.status)
            raise
        build = aggregate if self.route == CHAT_ROUTE else aggregate_text
        body = build(chunks, self.relay.usage)
        body["model"] = self.model
        response = Response(
            orjson.dumps(body), media_type="application/json", headers=self._headers()
        )
        self.done(200)
        return response

    # -- streamed client ----------------------------------------------------------------------
    async def streaming_response(self, receive: Receive) -> EventStreamResponse:
        batches = self._client_batches()
        # Read up to the first chunk that carries content before answering, so that upstream
        # errors and prompt mismatches still get a real HTTP status, and the suppression header
        # is set when the hold-back window already decided it.
        primed: list[dict] = []

        async def prime() -> None:
            async for batch in batches:
                primed.extend(batch)
                if any(
                    carries_content(c) or any(ch.get("finish_reason") for ch in c["choices"])
                    for c in batch
                ):
                    return

        try:
            await cancel_on_disconnect(receive, prime())
        except APIError as err:
            await batches.aclose()
            self.done(err.status)
            raise
        except ClientGone:
            await batches.aclose()
            raise
        return EventStreamResponse(
            self._events(primed, batches), headers=self._headers() | {"cache-control": "no-cache"}
        )

    async def _events(
        self, primed: list[dict], rest: AsyncIterator[list[dict]]
    ) -> AsyncIterator[bytes]:
        status = 200
        try:
            if primed:
                yield self._wire(primed)
            self.clock.pause()
            async for batch in rest:
                self.clock.resume()
                data = self._wire(batch)
                self.clock.pause()
                yield data
            self.clock.resume()
            tail = SSE_DONE
            if self.client_usage and self.relay.usage is not None:
                tail = (
                    sse(
                        {
                            "id": primed[0]["id"] if primed else None,
                            "object": primed[0]["object"] if primed else "chat.completion.chunk",
                            "created": primed[0]["created"] if primed else None,
                            "model": self.model,
                            "choices": [],
                            "usage": self.relay.usage,
                        }
                    )
                    + tail
                )
            yield tail
        except APIError as err:
            # Headers are gone: tell the client in-band, and end without [DONE] (the official
            # client raises on an error event).
            status = err.status
            yield sse(err.body())
        except asyncio.CancelledError:
            status = 499  # the client went away; closing `rest` closes the upstream request
            raise
        finally:
            await rest.aclose()
            self.done(status)

    def _wire(self, chunks: list[dict]) -> bytes:
        """The SSE bytes of some client chunks, sent in one write."""
        if self.first_content_at is None:
            for c in chunks:
                self._mark_first_content(c)
        return sse(*chunks)
