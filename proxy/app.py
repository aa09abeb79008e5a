"""create_app(settings): the guard proxy's FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.answer import own_upstream_error
from proxy.chat_service import ChatService
from proxy.config import Settings
from proxy.errors import JSON, APIError, error_body
from proxy.history import build_store
from proxy.key_slots import build_key_slots
from proxy.metrics import Metrics
from proxy.policy import ControlTokenMatcher
from proxy.readiness import probe_forever
from proxy.routes import chat, health, models, unsupported
from proxy.routes import metrics as metrics_route
from proxy.upstream import Upstream, UpstreamError
from proxy.watch import RefusalDetector

log = logging.getLogger("deepguard")


class ServedModel:
    """The model name clients must send: configured, or learned from the upstream once."""

    def __init__(self, upstream: Upstream, configured: str | None) -> None:
        self._upstream = upstream
        self.name = configured

    async def resolve(self) -> str:
        if self.name is None:
            models = await self._upstream.models()
            if not models:
                raise UpstreamError(
                    "malformed",
                    503,
                    "the model server lists no model yet",
                    "upstream_unavailable",
                    {"retry-after": "1"},
                )
            self.name = models[0]["id"]
        return self.name


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


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    if not settings.auth.api_keys:
        log.warning("no API keys configured: open access (allowed on loopback only)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        up = settings.upstream
        upstream = Upstream(
            up.url, up.api_key, up.connect_timeout_s, up.read_timeout_s, up.max_connections
        )
        # A configured tokenizer that cannot be read stops the start (unless the operator opted
        # out): the scan would silently lose the served model's own special tokens.
        control_tokens, source = ControlTokenMatcher.from_model_dir(
            up.tokenizer_path,
            extra=settings.policy.extra_control_tokens,
            required=settings.policy.require_tokenizer,
        )
        log.log(logging.INFO if up.tokenizer_path else logging.WARNING, "%s", source)
        history = None
        if settings.policy.history == "verified":
            history = build_store(settings.history)
        secret = settings.history.secret.encode() if settings.history.secret else os.urandom(32)
        detector = RefusalDetector.default(settings.watch.extra_refusal_phrases)
        app.state.settings = settings
        app.state.metrics = metrics
        app.state.upstream = upstream
        app.state.served_model = ServedModel(upstream, settings.model)
        app.state.chat = ChatService(
            upstream, metrics, detector, control_tokens, settings, history, secret
        )
        key_slots = app.state.key_slots = build_key_slots(settings.auth, up.max_connections)
        if hasattr(key_slots, "start"):
            await key_slots.start()
        app.state.readiness = None  # the background probe's latest answer
        # Everything built so far lives as long as the process: move it out of the collector's
        # reach, so full collections under load only walk the objects of requests in flight.
        gc.collect()
        gc.freeze()
        prober = None
        if up.probe_interval_s > 0:
            prober = asyncio.create_task(probe_forever(app.state, up.probe_interval_s))
        try:
            yield
        finally:
            if prober is not None:
                prober.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await prober
            await upstream.aclose()
            await key_slots.aclose()
            if history is not None:
                await history.aclose()

    app = FastAPI(
        title="deepguard",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=JSON,
        docs_url=None,
        redoc_url=None,
    )
    app.state.metrics = metrics
    for router in (
        chat.router,
        models.router,
        health.router,
        metrics_route.router,
        unsupported.router,
    ):
        app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.server.max_body_bytes,
        write_timeout_s=settings.server.write_timeout_s,
    )
    return app


def install_error_handlers(app: FastAPI) -> None:
    def count(request: Request, status: int) -> None:
        served = getattr(request.app.state, "served_model", None)
        name = (served.name if served else None) or "unknown"
        if request.url.path.startswith("/v1/"):
            request.app.state.metrics.requests.labels(name, request.url.path, str(status)).inc()

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSON:
        count(request, exc.status)
        return JSON(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(UpstreamError)
    async def upstream_error(request: Request, exc: UpstreamError) -> JSON:
        return await api_error(request, own_upstream_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        if exc.status_code == 404:
            body = error_body(
                f"unknown path {request.url.path}", "invalid_request_error", None, "unknown_url"
            )
        elif exc.status_code == 405:
            body = error_body(
                f"method {request.method} is not allowed on {request.url.path}",
                "invalid_request_error",
                None,
                "method_not_allowed",
            )
        else:
            body = error_body(str(exc.detail), "invalid_request_error", None, None)
        return JSON(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSON:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return await api_error(
            request,
            APIError(400, first.get("msg", "invalid request"), param=param, code="invalid_request"),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSON:
        request_id = request.scope.get("state", {}).get("request_id")
        log.exception("unhandled error (request %s)", request_id)
        count(request, 500)
        return JSON(
            error_body(
                "internal error in the proxy; the request id is in the x-request-id header",
                "server_error",
                None,
                "internal_error",
            ),
            status_code=500,
        )
