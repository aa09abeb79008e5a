"""The completion lane: POST /v1/chat/completions and /v1/completions go straight to their route
function, past FastAPI's per-request machinery.

Every answer the proxy streams pays for that machinery once: the server-error and exception
middlewares, the exit-stack middleware, route matching, FastAPI's request handler and its
dependency solving, and two send wrappers around every chunk. On the two routes that carry the
load none of it does anything (no dependencies, no path parameters, errors mapped by
`error_response`). The lane calls the same route functions, so FastAPI still documents them in
/openapi.json and still serves them wherever the lane does not match (a root path, a trailing
slash, another method); every other path goes to FastAPI unchanged.

So a middleware added with `app.add_middleware` (CORS, say) does not see the two completion
routes: one meant for them goes into `GuardApp.build_middleware_stack` (proxy/app.py), beside the
request context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.error_handlers import error_response

RouteFunction = Callable[[Request], Awaitable[Response]]


class CompletionLane:
    """ASGI: exact-path POSTs to `routes` are served here, everything else by `framework`."""

    def __init__(self, framework: ASGIApp, routes: dict[str, RouteFunction]) -> None:
        self.framework = framework
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.framework(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await route(request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            response = error_response(request, exc)
        # Past this point the response has started (both response kinds send their start
        # first), so a failure can only end the connection, as under FastAPI's middlewares.
        await response(scope, receive, send)
