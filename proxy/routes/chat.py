"""POST /v1/chat/completions and /v1/completions (thin: auth, body size, then the service).

/v1/completions goes through the same service; the policy rejects it unless the operator
enabled it (`policy.completions_enabled`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy.chat_service import CHAT_ROUTE, COMPLETIONS_ROUTE
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
            raise APIError(413, f"the request body is larger than the {limit}-byte limit",
                           param=None, code="request_too_large", headers={"x-should-retry": "false"})
        parts.append(part)
    return b"".join(parts)


async def _serve(request: Request, route: str) -> Response:
    state = request.app.state
    key = authenticate(request)
    raw = await read_body(request, state.settings.server.max_body_bytes)
    served_model = await state.served_model.resolve()
    return await state.chat.handle(raw, served_model, bool(key and key.allow_prefill),
                                   request_id(request), received_at(request), request.receive,
                                   route)


@router.post(CHAT_ROUTE, openapi_extra=CHAT_OPENAPI)
async def chat_completions(request: Request) -> Response:
    return await _serve(request, CHAT_ROUTE)


@router.post(COMPLETIONS_ROUTE)
async def completions(request: Request) -> Response:
    return await _serve(request, COMPLETIONS_ROUTE)
