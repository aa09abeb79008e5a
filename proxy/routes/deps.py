"""Request-level helpers shared by the routers: authentication and the browser checks of open
(keyless, loopback-only) mode. Per-key concurrency limits are in proxy/key_slots.py."""

from __future__ import annotations

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


def request_id(request: Request) -> str:
    return request.scope["state"]["request_id"]


def received_at(request: Request) -> float:
    return request.scope["state"]["received_at"]
