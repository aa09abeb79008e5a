"""The ASGI layer under every route: request id and timing, the body size limit, and one write
timeout per response (a client that stops reading cannot hold a stream open)."""

from __future__ import annotations

import asyncio
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.deadline import WaitDeadline
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


class WriteWatch(WaitDeadline):
    """Bounds each ASGI `send` of one response by `timeout_s` (TimeoutError past it), as
    `asyncio.timeout` around every send would, with one timer per response instead of one per
    send (a streamed answer sends once per token; see proxy.deadline)."""

    __slots__ = ("_task", "_cancelling", "_fired")

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self._task: asyncio.Task | None = None
        self._cancelling = 0
        self._fired = False

    async def send(self, send: Send, message: Message) -> None:
        self.begin()
        self._task = task = asyncio.current_task()
        self._cancelling = task.cancelling()
        try:
            await send(message)
        except asyncio.CancelledError:
            if self._fired:
                self._fired = False
                if task.uncancel() <= self._cancelling:
                    raise TimeoutError("the client did not read the response in time") from None
            raise
        finally:
            self.end()

    def expired(self) -> None:
        self._fired = True
        self._task.cancel()


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
