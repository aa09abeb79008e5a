"""Request-level helpers shared by the routers: authentication, per-key concurrency, and the
browser checks of open (keyless, loopback-only) mode."""

from __future__ import annotations

from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import Request

from proxy.config import ApiKey
from proxy.errors import APIError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def authenticate(request: Request) -> ApiKey | None:
    """The caller's API key entry, or None when the proxy runs open (no keys configured)."""
    settings = request.app.state.settings
    if not settings.auth.api_keys:
        check_open_mode_request(request)
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    key = settings.key_for(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise APIError(
            401,
            "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.",
            "invalid_request_error",
            None,
            "invalid_api_key",
            {"www-authenticate": "Bearer", "x-should-retry": "false"},
        )
    return key


def _host_of(value: str) -> str:
    """The host name of a Host header or an Origin URL, without port or brackets."""
    if "://" in value:
        return (urlsplit(value).hostname or "").lower()
    host = value.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_open_mode_request(request: Request) -> None:
    """Open mode trusts whoever reaches the loopback port, so a web page must not be able to:
    DNS rebinding makes a browser send `Host: attacker.example` to 127.0.0.1, and a cross-site
    form can post `text/plain` without a CORS preflight. Only loopback Host and Origin headers
    and JSON bodies are accepted."""
    host = request.headers.get("host", "")
    if _host_of(host) not in LOOPBACK_HOSTS:
        raise APIError(
            403,
            "this proxy runs without API keys and answers only requests "
            "addressed to a loopback host",
            "invalid_request_error",
            None,
            "host_not_allowed",
            {"x-should-retry": "false"},
        )
    origin = request.headers.get("origin")
    if origin is not None and _host_of(origin) not in LOOPBACK_HOSTS:
        raise APIError(
            403,
            "cross-origin requests are not accepted by a proxy without API keys",
            "invalid_request_error",
            None,
            "origin_not_allowed",
            {"x-should-retry": "false"},
        )
    if request.method == "POST":
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise APIError(
                415,
                "request bodies must be sent as application/json",
                "invalid_request_error",
                None,
                "unsupported_media_type",
                {"x-should-retry": "false"},
            )


class KeySlots:
    """Requests in flight per API key (open access is one key): one client cannot take every
    upstream connection. Over the limit: 429 with Retry-After (the OpenAI client retries it)."""

    def __init__(self, auth_settings, upstream_connections: int) -> None:
        self._default = auth_settings.max_concurrent_per_key or max(1, upstream_connections // 2)
        self._in_flight: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: ApiKey | None):
        name = key.key if key is not None else ""
        limit = key.max_concurrent if key is not None and key.max_concurrent else self._default
        count = self._in_flight.get(name, 0)
        if count >= limit:
            raise APIError(
                429,
                f"too many requests in flight for this API key (limit {limit}); retry shortly",
                "rate_limit_error",
                None,
                "concurrency_limit",
                {"retry-after": "1"},
            )
        self._in_flight[name] = count + 1
        try:
            yield
        finally:
            left = self._in_flight[name] - 1
            if left:
                self._in_flight[name] = left
            else:
                del self._in_flight[name]


def request_id(request: Request) -> str:
    return request.scope["state"]["request_id"]


def received_at(request: Request) -> float:
    return request.scope["state"]["received_at"]
