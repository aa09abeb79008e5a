"""Every failure becomes an OpenAI-shaped error body with the right status; nothing else (no
traceback, no HTML) reaches a client.

`error_response` is the one mapping from an exception to that response. FastAPI's exception
handlers use it, and so does the completion lane (proxy/completion_lane.py), which serves the
two completion routes outside FastAPI's exception middleware."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from proxy.answer import own_upstream_error
from proxy.errors import JSON, APIError, error_body
from proxy.upstream import UpstreamError

log = logging.getLogger("deepguard")


def error_response(request: Request, exc: Exception) -> JSON:
    """The client's response to `exc`, counted in the request metrics like any answer."""
    if isinstance(exc, UpstreamError):
        exc = own_upstream_error(exc)
    elif isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        exc = APIError(
            400, first.get("msg", "invalid request"), param=param, code="invalid_request"
        )
    if isinstance(exc, APIError):
        _count(request, exc.status)
        return JSON(exc.body(), status_code=exc.status, headers=exc.headers)
    if isinstance(exc, StarletteHTTPException):
        return JSON(_http_error_body(request, exc), status_code=exc.status_code)
    log.error(
        "unhandled error (request %s)",
        request.scope.get("state", {}).get("request_id"),
        exc_info=exc,
    )
    _count(request, 500)
    return JSON(
        error_body(
            "internal error in the proxy; the request id is in the x-request-id header",
            "server_error",
            None,
            "internal_error",
        ),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSON:
        return error_response(request, exc)

    for kind in (
        APIError,
        UpstreamError,
        StarletteHTTPException,
        RequestValidationError,
        Exception,
    ):
        app.add_exception_handler(kind, handle)


def _count(request: Request, status: int) -> None:
    served = getattr(request.app.state, "served_model", None)
    name = (served.name if served else None) or "unknown"
    if request.url.path.startswith("/v1/"):
        request.app.state.metrics.requests.labels(name, request.url.path, str(status)).inc()


def _http_error_body(request: Request, exc: StarletteHTTPException) -> dict:
    if exc.status_code == 404:
        return error_body(
            f"unknown path {request.url.path}", "invalid_request_error", None, "unknown_url"
        )
    if exc.status_code == 405:
        return error_body(
            f"method {request.method} is not allowed on {request.url.path}",
            "invalid_request_error",
            None,
            "method_not_allowed",
        )
    return error_body(str(exc.detail), "invalid_request_error", None, None)
