"""The one client for the OpenAI/vLLM HTTP protocol.

One pooled `httpx.AsyncClient` for the app's life. Every failure becomes an `UpstreamError` that
knows its metric `kind` and the OpenAI error the client should see, so routes never handle httpx
exceptions. Streams are closed as soon as the consumer stops iterating (client disconnect), which
closes the upstream connection and makes vLLM abort the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from proxy.errors import APIError


class UpstreamError(Exception):
    """A failed upstream call. `kind` labels deepguard_upstream_errors_total."""

    def __init__(self, kind: str, status: int, message: str, code: str,
                 headers: dict[str, str] | None = None, param: str | None = None) -> None:
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


class SSEParser:
    """Incremental Server-Sent Events parser: feed lines, get each event's data when it ends.

    Tolerates comment lines (`: keep-alive`), `event:`/`id:` fields, CRLF, and data split over
    several `data:` lines (joined with newlines, per the SSE spec).
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed_line(self, line: str) -> str | None:
        line = line.rstrip("\r")
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        return None

    def flush(self) -> str | None:
        """The last event when the stream ended without a blank line."""
        return self.feed_line("")


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
        return UpstreamError("client_error", 400 if status == 422 else status, message,
                             code if code and not code.isdigit() else "upstream_rejected_request",
                             {"x-should-retry": "false"}, param)
    if status == 429:
        return UpstreamError("rate_limited", 429, message, "rate_limit_exceeded")
    if status in (401, 403):
        return UpstreamError("auth", 502, "the upstream rejected the proxy's credentials; "
                             "check upstream.api_key", "upstream_auth_failed")
    if status >= 500:
        return UpstreamError("server_error", 502, f"upstream error: {message}", "upstream_error")
    return UpstreamError("bad_status", 502, f"upstream answered an unexpected HTTP {status}",
                         "upstream_bad_status")


def _transport_error(exc: httpx.HTTPError) -> UpstreamError:
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
        return UpstreamError("connect", 503, "the model server is unreachable; retry shortly",
                             "upstream_unavailable", {"retry-after": "1"})
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError("timeout", 504, "the model server did not answer in time",
                             "upstream_timeout")
    return UpstreamError("protocol", 502, "the connection to the model server failed",
                         "upstream_connection_failed")


class Upstream:
    def __init__(self, base_url: str, api_key: str | None = None, connect_timeout_s: float = 5.0,
                 read_timeout_s: float = 120.0, max_connections: int = 512) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s,
                                  pool=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def models(self) -> list[dict]:
        try:
            resp = await self.client.get("/v1/models", timeout=5.0)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        if resp.status_code != 200:
            raise error_for_status(resp.status_code, resp.content)
        try:
            data = orjson.loads(resp.content)["data"]
            return [m for m in data if isinstance(m, dict) and "id" in m]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UpstreamError("malformed", 502, "the model server sent a malformed model list",
                                "upstream_malformed_response") from None

    @asynccontextmanager
    async def stream_chat(self, body: dict[str, Any], request_id: str,
                          path: str = "/v1/chat/completions"
                          ) -> AsyncIterator[AsyncIterator[dict]]:
        """POST a streaming (chat) completion; yields an iterator of parsed chunks.

        Leaving the `async with` (normally, by error, or by cancellation when our client went away)
        closes the upstream response at once.
        """
        request = self.client.build_request(
            "POST", path, content=orjson.dumps(body),
            headers={"content-type": "application/json", "x-request-id": request_id})
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        try:
            if response.status_code != 200:
                raw = await response.aread()
                raise error_for_status(response.status_code, raw)
            yield self._chunks(response)
        finally:
            await response.aclose()

    @staticmethod
    async def _chunks(response: httpx.Response) -> AsyncIterator[dict]:
        parser = SSEParser()
        try:
            async for line in response.aiter_lines():
                data = parser.feed_line(line)
                if data is None:
                    continue
                if data == "[DONE]":
                    return
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamError("malformed", 502, "the model server sent a malformed event",
                                        "upstream_malformed_response") from None
                if not isinstance(chunk, dict):
                    raise UpstreamError("malformed", 502, "the model server sent a malformed event",
                                        "upstream_malformed_response")
                if "error" in chunk:
                    message, _, _ = normalise_error_body(500, orjson.dumps(chunk))
                    raise UpstreamError("stream_error", 502, f"upstream error: {message}",
                                        "upstream_error")
                yield chunk
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        # The stream ended without [DONE]: the upstream died or cut the connection.
        raise UpstreamError("incomplete_stream", 502, "the model server closed the stream early",
                            "upstream_stream_incomplete")
