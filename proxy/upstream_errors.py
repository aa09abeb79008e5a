"""Every way an upstream call can fail, as one exception: `UpstreamError` knows its metric `kind`
(deepguard_upstream_errors_total) and the OpenAI error the client sees, so routes never handle
transport exceptions. Transport failures of httpx and of `proxy.http1`, error statuses and error
bodies in any of the shapes model servers send are mapped here."""

from __future__ import annotations

import httpx
import orjson

from proxy import http1
from proxy.errors import APIError

# Enough of an upstream error body to report; the rest is not read.
ERROR_BODY_LIMIT = 64 * 1024


class UpstreamError(Exception):
    """A failed upstream call. `kind` labels deepguard_upstream_errors_total."""

    def __init__(
        self,
        kind: str,
        status: int,
        message: str,
        code: str,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.param = param

    def to_api_error(self) -> APIError:
        type_ = "invalid_request_error" if self.status < 500 else "server_error"
        return APIError(self.status, self.message, type_, self.param, self.code, dict(self.headers))


def normalise_error_body(status: int, raw: bytes) -> tuple[str, str | None, str | None]:
    """(message, param, code) from any upstream error body: OpenAI's, vLLM's (int code),
    vLLM's `{"error": "Unauthorized"}`, or plain text."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return (text[:500] or f"upstream answered HTTP {status}", None, None)
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, str):
        return (err, None, None)
    if isinstance(err, dict):
        message = err.get("message") or err.get("detail") or f"upstream answered HTTP {status}"
        param = err.get("param") if isinstance(err.get("param"), str) else None
        code = err.get("code")
        return (str(message), param, str(code) if code is not None else None)
    return (f"upstream answered HTTP {status}", None, None)


def error_for_status(status: int, raw: bytes) -> UpstreamError:
    """Map an upstream HTTP error to what our client sees.

    The client's own mistakes (400, 404, 413, 422, 429) keep their status; an upstream that rejects
    the proxy's credentials or fails is the gateway's problem (502), never the client's.
    """
    message, param, code = normalise_error_body(status, raw)
    if status in (400, 404, 413, 422):
        return UpstreamError(
            "client_error",
            400 if status == 422 else status,
            message,
            code if code and not code.isdigit() else "upstream_rejected_request",
            {"x-should-retry": "false"},
            param,
        )
    if status == 429:
        return UpstreamError("rate_limited", 429, message, "rate_limit_exceeded")
    if status in (401, 403):
        return UpstreamError(
            "auth",
            502,
            "the upstream rejected the proxy's credentials; check upstream.api_key",
            "upstream_auth_failed",
        )
    if status >= 500:
        return UpstreamError("server_error", 502, f"upstream error: {message}", "upstream_error")
    return UpstreamError(
        "bad_status", 502, f"upstream answered an unexpected HTTP {status}", "upstream_bad_status"
    )


def _transport_error(exc: httpx.HTTPError) -> UpstreamError:
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
        return _connect_error()
    if isinstance(exc, httpx.TimeoutException):
        return _timeout_error()
    return _protocol_error()


def _protocol_error() -> UpstreamError:
    return UpstreamError(
        "protocol", 502, "the connection to the model server failed", "upstream_connection_failed"
    )


def _connect_error() -> UpstreamError:
    return UpstreamError(
        "connect",
        503,
        "the model server is unreachable; retry shortly",
        "upstream_unavailable",
        {"retry-after": "1"},
    )


def _timeout_error() -> UpstreamError:
    return UpstreamError(
        "timeout", 504, "the model server did not answer in time", "upstream_timeout"
    )


def _http1_error(exc: Exception) -> UpstreamError:
    if isinstance(exc, http1.ConnectFailed):
        return _connect_error()
    if isinstance(exc, http1.ReadTimeout):
        return _timeout_error()
    return _protocol_error()


def _malformed_event() -> UpstreamError:
    return UpstreamError(
        "malformed", 502, "the model server sent a malformed event", "upstream_malformed_response"
    )


HTTP1_ERRORS = (http1.ConnectFailed, http1.ReadTimeout, http1.ProtocolFailure)
