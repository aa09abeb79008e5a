"""The one client for the OpenAI/vLLM HTTP protocol.

The hot call (the streamed POST every chat request makes) goes through `proxy.http1`, a lean
keep-alive HTTP/1.1 client; the cold one (the model list) through a pooled `httpx.AsyncClient`.
Every failure becomes an `UpstreamError` that knows its metric `kind` and the OpenAI error the
client should see, so routes never handle transport exceptions. Streams are closed as soon as the
consumer stops iterating (client disconnect), which closes the upstream connection and makes vLLM
abort the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from proxy import http1
from proxy.errors import APIError

# Enough of an upstream error body to report; the rest is not read.
ERROR_BODY_LIMIT = 64 * 1024
# An SSE event larger than this is not a chat chunk (the first one carries the whole prompt).
MAX_EVENT_BYTES = 64 * 1024 * 1024


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


class SSESplitter:
    """Incremental SSE parser on bytes: feed body pieces, get each complete event's data.

    The fast path splits on blank lines and takes a lone `data: ` line as is, with no decoding;
    anything else (comments, other fields, multi-line data) goes the spec's slow way. CRLF and
    lone CR line ends are normalised first, also when a CRLF is split across two pieces.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._cr_pending = False
        self._max = max_event_bytes

    def feed(self, data: bytes) -> list[bytes]:
        if self._cr_pending or b"\r" in data:
            data = self._normalise(data)
        buf = self._buf + data if self._buf else data
        if b"\n\n" not in buf:
            if len(buf) > self._max:
                raise ValueError("an event is larger than the limit")
            self._buf = buf
            return []
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        out = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block:
                out.append(block[6:])
            elif block:
                event = _event_data(block)
                if event is not None:
                    out.append(event)
        return out

    def _normalise(self, data: bytes) -> bytes:
        if self._cr_pending and data[:1] == b"\n":
            data = data[1:]  # the LF of a CRLF whose CR ended the last piece
        self._cr_pending = data[-1:] == b"\r"
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _event_data(block: bytes) -> bytes | None:
    """The data of one event's lines (no blank line inside), or None when it has none."""
    data = []
    for line in block.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        field, _, value = line.partition(b":")
        if field == b"data":
            data.append(value[1:] if value[:1] == b" " else value)
    return b"\n".join(data) if data else None


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


class Upstream:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        max_connections: int = 512,
    ) -> None:
        if api_key is not None and any(c in api_key for c in "\r\n\0"):
            raise ValueError("upstream.api_key must not contain line breaks or NUL")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(
                read_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s
            ),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self.pool = http1.Pool(self.base_url, connect_timeout_s, read_timeout_s, max_connections)
        # Every header of the streamed POST but the per-request ones, built once.
        self._static_headers = (
            f"host: {self.pool.host_header}\r\n"
            "content-type: application/json\r\naccept: */*\r\n"
            "user-agent: deepguard\r\n"
            + (f"authorization: Bearer {api_key}\r\n" if api_key else "")
        ).encode("latin-1")

    async def aclose(self) -> None:
        self.pool.close()
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
            raise UpstreamError(
                "malformed",
                502,
                "the model server sent a malformed model list",
                "upstream_malformed_response",
            ) from None

    def _request(self, path: str, request_id: str, payload: bytes) -> bytes:
        if any(c in request_id for c in "\r\n\0"):
            raise ValueError("request id must not contain line breaks or NUL")
        return b"".join(
            (
                f"POST {self.pool.path_prefix}{path} HTTP/1.1\r\n".encode("latin-1"),
                self._static_headers,
                f"x-request-id: {request_id}\r\ncontent-length: {len(payload)}\r\n\r\n".encode(
                    "latin-1"
                ),
                payload,
            )
        )

    @asynccontextmanager
    async def stream_chat(
        self,
        body: dict[str, Any],
        request_id: str,
        path: str = "/v1/chat/completions",
        batched: bool = False,
    ) -> AsyncIterator[AsyncIterator[dict] | AsyncIterator[list[dict]]]:
        """POST a streaming (chat) completion; yields an iterator of parsed chunks, or with
        `batched` of lists of chunks: all those that arrived together (so the caller can send
        them to its client in one write instead of one per chunk).

        Leaving the `async with` (normally, by error, or by cancellation when our client went away)
        closes the upstream connection at once unless the answer was read to its end.
        """
        request = self._request(path, request_id, orjson.dumps(body))
        try:
            response = await self.pool.request(request)
        except HTTP1_ERRORS as exc:
            raise _http1_error(exc) from None
        try:
            if response.status != 200:
                try:
                    raw = await response.read_all(ERROR_BODY_LIMIT)
                except HTTP1_ERRORS as exc:
                    raise _http1_error(exc) from None
                raise error_for_status(response.status, raw)
            batches = self._batches(response)
            yield batches if batched else _flatten(batches)
        finally:
            response.close()

    @staticmethod
    async def _batches(response: http1.Response) -> AsyncIterator[list[dict]]:
        splitter = SSESplitter()
        try:
            while (piece := await response.read_body()) is not None:
                try:
                    events = splitter.feed(piece)
                except ValueError:
                    raise _malformed_event() from None
                batch: list[dict] = []
                failure: UpstreamError | None = None
                for data in events:
                    if data == b"[DONE]":
                        # Reuse the connection once the (already ended) response is read.
                        response.release_when_complete()
                        if batch:
                            yield batch
                        return
                    chunk = _parse_event(data)
                    if isinstance(chunk, UpstreamError):
                        failure = chunk
                        break
                    batch.append(chunk)
                if batch:  # the good chunks before a failure still go out first
                    yield batch
                if failure is not None:
                    raise failure
        except HTTP1_ERRORS as exc:
            raise _http1_error(exc) from None
        # The stream ended without [DONE]: the upstream died or cut the connection.
        raise UpstreamError(
            "incomplete_stream",
            502,
            "the model server closed the stream early",
            "upstream_stream_incomplete",
        )


def _parse_event(data: bytes) -> dict | UpstreamError:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _malformed_event()
    if not isinstance(chunk, dict):
        return _malformed_event()
    if "error" in chunk:
        message, _, _ = normalise_error_body(500, data)
        return UpstreamError("stream_error", 502, f"upstream error: {message}", "upstream_error")
    return chunk


async def _flatten(batches: AsyncIterator[list[dict]]) -> AsyncIterator[dict]:
    try:
        async for batch in batches:
            for chunk in batch:
                yield chunk
    finally:
        await batches.aclose()
