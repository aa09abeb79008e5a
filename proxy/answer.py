"""One request's answer on its way from the upstream to the client: the upstream stream read
through the relay (policy on the first chunk, recovery watch on every chunk), then either one JSON
body or an event stream, and the request's metrics when it ends. Time spent waiting on the
upstream or on the client is excluded from `deepguard_proxy_overhead_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.responses import Response
from starlette.types import Receive

from proxy.endpoints import Endpoint
from proxy.errors import APIError
from proxy.event_stream import SSE_DONE, ClientGone, EventStreamResponse, cancel_on_disconnect, sse
from proxy.metrics import Metrics
from proxy.policy import PolicyViolation
from proxy.relay import AnswerRelay, carries_content
from proxy.upstream import Upstream, UpstreamError

log = logging.getLogger("deepguard.chat")


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


class Answer:
    """One request's upstream stream and its way to the client."""

    def __init__(
        self,
        upstream: Upstream,
        metrics: Metrics,
        endpoint: Endpoint,
        relay: AnswerRelay,
        served_model: str,
        request_id: str,
        received_at: float,
        clock: Clock,
        upstream_body: dict,
        client_usage: bool,
        record_history: Callable[[AnswerRelay], Awaitable[None]] | None = None,
    ) -> None:
        self.upstream = upstream
        self.metrics = metrics
        self.endpoint = endpoint
        self.relay = relay
        self.model = served_model
        self.request_id = request_id
        self.received_at = received_at
        self.clock = clock
        self.upstream_body = upstream_body
        self.client_usage = client_usage
        self.record_history = record_history
        self.first_content_at: float | None = None

    # -- upstream -------------------------------------------------------------------------------
    async def _client_batches(self) -> AsyncIterator[list[dict]]:
        """Client chunks in order, grouped as their upstream chunks arrived together (one write
        to the client per group); raises APIError for upstream failures and prompt mismatches."""
        try:
            async with self.upstream.stream_chat(
                self.upstream_body, self.request_id, self.endpoint.route, batched=True
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
                        self.metrics.policy_rejections.labels(self.model, v.vector).inc()
                        log.warning(
                            "rendered prompt rejected: %s (request %s)", v.code, self.request_id
                        )
                        raise v.as_api_error() from None
                    if out:
                        yield out
            out = self.relay.finish()
            if self.record_history is not None:
                # Recorded before the last chunks go out: a client that has the whole answer
                # can send it back at once.
                await self.record_history(self.relay)
            if out:
                yield out
        except UpstreamError as exc:
            self.metrics.upstream_errors.labels(self.model, exc.kind).inc()
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
            self.metrics.ttft.labels(self.model).observe(self.first_content_at - self.received_at)

    def _headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.request_id}
        if self.relay.suppressed:
            headers["x-deepguard-recovery"] = "suppressed"
        return headers

    def done(self, status: int) -> None:
        self.clock.pause()
        m = self.metrics
        m.requests.labels(self.model, self.endpoint.route, str(status)).inc()
        m.request_duration.labels(self.model, self.endpoint.route).observe(
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
        body = self.endpoint.assemble(chunks, self.relay.usage)
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
