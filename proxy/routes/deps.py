"""Request-level helpers shared by the routers: authentication and the served model."""

from __future__ import annotations

from fastapi import Request

from proxy.config import ApiKey
from proxy.errors import APIError


def authenticate(request: Request) -> ApiKey | None:
    """The caller's API key entry, or None when the proxy runs open (no keys configured)."""
    settings = request.app.state.settings
    if not settings.auth.api_keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    key = settings.key_for(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise APIError(401, "Incorrect or missing API key. Send it as 'Authorization: Bearer "
                       "<key>'.", "invalid_request_error", None, "invalid_api_key",
                       {"www-authenticate": "Bearer", "x-should-retry": "false"})
    return key


def request_id(request: Request) -> str:
    return request.scope["state"]["request_id"]


def received_at(request: Request) -> float:
    return request.scope["state"]["received_at"]
