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
from proxy.sse_split import SSESplitter
from proxy.upstream_errors import (
    ERROR_BODY_LIMIT,
    HTTP1_ERRORS,
    UpstreamError,
    _http1_error,
    _malformed_event,
    _transport_error,
    error_for_status,
    normalise_error_body,
)

__all__ = ["Upstream", "UpstreamError"]


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
