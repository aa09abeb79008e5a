"""POST /v1/chat/completions and /v1/completions (thin: auth, body size, then the service).

/v1/completions goes through the same service; the policy rejects it unless the operator
enabled it (`policy.completions_enabled`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy.endpoints import CHAT, COMPLETIONS, Endpoint
from proxy.errors import APIError
from proxy.routes.chat_openapi import CHAT_OPENAPI
from proxy.routes.deps import authenticate, received_at, request_id

router = APIRouter()


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, stopping at `limit` bytes (a chunked body has no content-length)."""
    size, parts = 0, []
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise APIError(
                413,
                f"the request body is larger than the {limit}-byte limit",
                param=None,
                code="request_too_large",
                headers={"x-should-retry": "false"},
            )
        parts.append(part)
    return b"".join(parts)


async def _serve(request: Request, endpoint: Endpoint) -> Response:
    state = request.app.state
    key = authenticate(request)
    # The slot is held until the response object is built; a streamed answer goes on after
    # that, so its slot is released by the stream's own end (see `_hold_until_sent`).
    slots = state.key_slots.hold(key)
    await slots.__aenter__()
    try:
        raw = await read_body(request, state.settings.server.max_body_bytes)
        served_model = await state.served_model.resolve()
        response = await state.chat.handle(
            raw,
            served_model,
            bool(key and key.allow_prefill),
            request_id(request),
            received_at(request),
            request.receive,
            endpoint,
            key_id=key.key if key is not None else "",
        )
    except BaseException:
        await slots.__aexit__(None, None, None)
        raise
    return _hold_until_sent(response, slots)


class _ReleaseWhenSent(Response):
    """Sends the wrapped response, then releases the key's slot (also when the client left)."""

    def __init__(self, inner: Response, slots) -> None:  # super().__init__ not wanted
        self.inner = inner
        self.slots = slots
        self.background = None
        self.status_code = inner.status_code

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            await self.slots.__aexit__(None, None, None)


def _hold_until_sent(response: Response, slots) -> Response:
    return _ReleaseWhenSent(response, slots)


@router.post(CHAT.route, openapi_extra=CHAT_OPENAPI)
async def chat_completions(request: Request) -> Response:
    return await _serve(request, CHAT)


@router.post(COMPLETIONS.route)
async def completions(request: Request) -> Response:
    return await _serve(request, COMPLETIONS)


# The completion lane (proxy/completion_lane.py) serves these exact-path POSTs itself, with the
# same functions; the routes above keep them in /openapi.json and serve them wherever the lane
# does not match.
LANE_ROUTES = {CHAT.route: chat_completions, COMPLETIONS.route: completions}
