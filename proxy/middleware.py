"""The ASGI layer under every route: request id and timing, the body size limit, and one write
timeout per response (a client that stops reading cannot hold a stream open)."""

from __future__ import annotations

import asyncio
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.errors import JSON, error_body


class RequestContext:
    """Pure ASGI middleware: mint the request id, stamp the arrival time, refuse oversized bodies
    early. It does not buffer responses, so streams pass straight through."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, write_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.write_timeout_s = write_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req-{uuid.uuid4().hex}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["received_at"] = time.perf_counter()
        header_id = (b"x-request-id", request_id.encode())

        # A client that stops reading makes `send` wait on a full socket buffer forever, holding
        # an upstream slot: give up after the write timeout (the stream is then cancelled and
        # its upstream request closed).
        watch = WriteWatch(self.write_timeout_s)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, header_id]
            await watch.send(send, message)

        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    try:
                        await too_large(self.max_body_bytes)(scope, receive, send_with_id)
                    finally:
                        watch.close()
                    return
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            watch.close()


class WriteWatch:
    """Bounds each ASGI `send` of one response by `timeout_s` (TimeoutError past it), as
    `asyncio.timeout` around every send would, with one timer per response instead of one per
    send: a streamed answer sends once per token, and a timer armed and cancelled per send (a
    Timeout object, a TimerHandle, two heap operations) was a visible share of the per-chunk
    cost. The timer checks, when due, whether a send has been waiting for `timeout_s`; if none
    is under way it is not re-armed until the next send."""

    __slots__ = ("_loop", "_timeout_s", "_since", "_task", "_cancelling", "_handle", "_fired")

    def __init__(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout_s = timeout_s
        self._since: float | None = None  # when the send under way began
        self._task: asyncio.Task | None = None
        self._cancelling = 0
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    async def send(self, send: Send, message: Message) -> None:
        self._since = since = self._loop.time()
        self._task = task = asyncio.current_task()
        self._cancelling = task.cancelling()
        if self._handle is None:
            self._handle = self._loop.call_at(since + self._timeout_s, self._check)
        try:
            await send(message)
        except asyncio.CancelledError:
            if self._fired:
                self._fired = False
                if task.uncancel() <= self._cancelling:
                    raise TimeoutError("the client did not read the response in time") from None
            raise
        finally:
            self._since = None

    def _check(self) -> None:
        self._handle = None
        since = self._since
        if since is None:
            return
        due = since + self._timeout_s
        if due > self._loop.time():
            self._handle = self._loop.call_at(due, self._check)
            return
        self._fired = True
        self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def too_large(limit: int) -> JSON:
    return JSON(
        error_body(
            f"the request body is larger than the {limit}-byte limit",
            "invalid_request_error",
            None,
            "request_too_large",
        ),
        status_code=413,
        headers={"x-should-retry": "false"},
    )
