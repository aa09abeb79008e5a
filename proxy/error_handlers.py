"""Every failure becomes an OpenAI-shaped error body with the right status; nothing else (no
traceback, no HTML) reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from proxy.answer import own_upstream_error
from proxy.errors import JSON, APIError, error_body
from proxy.upstream import UpstreamError

log = logging.getLogger("deepguard")


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
