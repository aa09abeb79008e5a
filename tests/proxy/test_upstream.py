"""The upstream client: SSE parsing, error normalisation, timeouts and cancellation.

The network tests run the scripted stub upstream as a real process on loopback.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from proxy.upstream import (SSEParser, Upstream, UpstreamError, error_for_status,
                            normalise_error_body)
from tests.support.processes import free_port


def feed(lines: list[str]) -> list[str]:
    parser = SSEParser()
    events = [e for e in (parser.feed_line(line) for line in lines) if e is not None]
    last = parser.flush()
    return events + ([last] if last is not None else [])


def test_sse_parser_reads_data_events_and_skips_comments():
    lines = [": keep-alive", "", "data: {\"a\": 1}", "", "event: message", "id: 7",
             "data: [DONE]", ""]
    assert feed(lines) == ['{"a": 1}', "[DONE]"]


def test_sse_parser_joins_multi_line_data_and_tolerates_crlf_and_no_space():
    assert feed(["data:first\r", "data: second\r", "\r"]) == ["first\nsecond"]


def test_sse_parser_returns_last_event_without_trailing_blank_line():
    assert feed(["data: tail"]) == ["tail"]


@pytest.mark.parametrize("raw,expected", [
    (b'{"error": {"message": "bad", "type": "BadRequestError", "param": "n", "code": 400}}',
     ("bad", "n", "400")),
    (b'{"object": "error", "message": "too long", "type": "BadRequestError", "code": 400}',
     ("too long", None, "400")),
    (b'{"error": "Unauthorized"}', ("Unauthorized", None, None)),
    (b"<html>gateway</html>", ("<html>gateway</html>", None, None)),
])
def test_normalise_error_body_handles_openai_vllm_and_text(raw, expected):
    assert normalise_error_body(400, raw) == expected


def test_error_mapping_keeps_client_errors_and_hides_gateway_faults():
    assert error_for_status(400, b'{"error": {"message": "m", "code": 400}}').status == 400
    assert error_for_status(400, b'{"error": {"message": "m", "code": 400}}').code == \
        "upstream_rejected_request"
    assert error_for_status(401, b'{"error": "Unauthorized"}').status == 502
    assert error_for_status(500, b"boom").status == 502
    assert error_for_status(429, b"{}").status == 429
    assert error_for_status(418, b"teapot").code == "upstream_bad_status"


async def _collect(up: Upstream, body: dict, limit: int | None = None) -> list[dict]:
    out = []
    async with up.stream_chat(body, "req-test") as chunks:
        async for chunk in chunks:
            out.append(chunk)
            if limit is not None and len(out) >= limit:
                break
    return out


def test_stream_parses_chunks_from_real_stub(stub_upstream):
    async def run():
        up = Upstream(stub_upstream.url)
        try:
            name = stub_upstream.script("five", [" a", " b", " c", " d", " e"])
            chunks = await _collect(up, {"model": "stub-model", "stream": True,
                                         "messages": [{"role": "user", "content": name}],
                                         "return_token_ids": True})
        finally:
            await up.aclose()
        return chunks

    chunks = asyncio.run(run())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " a b c d e"
    assert [c["choices"][0]["token_ids"] for c in chunks[1:6]] == [[1000], [1001], [1002], [1003], [1004]]


def test_closing_the_stream_cancels_the_upstream_request_within_a_second(stub_upstream):
    name = stub_upstream.script("slow", [" x"] * 200, delay_s=0.05)
    before = stub_upstream.stats()["cancelled"]

    async def run():
        up = Upstream(stub_upstream.url)
        try:
            got = await _collect(up, {"model": "stub-model", "stream": True,
                                      "messages": [{"role": "user", "content": name}]}, limit=3)
        finally:
            await up.aclose()
        return got

    assert len(asyncio.run(run())) == 3
    deadline = time.monotonic() + 1.0
    while stub_upstream.stats()["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stub_upstream.stats()["cancelled"] == before + 1


def test_connection_refused_is_503_with_retry_after():
    async def run():
        up = Upstream(f"http://127.0.0.1:{free_port()}", connect_timeout_s=1.0)
        try:
            await _collect(up, {"messages": []})
        finally:
            await up.aclose()

    with pytest.raises(UpstreamError) as info:
        asyncio.run(run())
    assert info.value.status == 503 and info.value.headers["retry-after"] == "1"
    assert info.value.kind == "connect"


def test_hung_upstream_is_504_after_the_read_timeout(stub_upstream):
    name = stub_upstream.script("hang", [], fault="hang")

    async def run():
        up = Upstream(stub_upstream.url, read_timeout_s=0.5)
        try:
            await _collect(up, {"stream": True, "messages": [{"role": "user", "content": name}]})
        finally:
            await up.aclose()

    with pytest.raises(UpstreamError) as info:
        asyncio.run(run())
    assert (info.value.status, info.value.kind) == (504, "timeout")


@pytest.mark.parametrize("fault,kind", [("close_mid_stream", None),
                                        ("malformed_json", "malformed")])
def test_broken_streams_raise_upstream_errors(stub_upstream, fault, kind):
    name = stub_upstream.script(f"broken-{fault}", [" p"] * 6, fault=fault)

    async def run():
        up = Upstream(stub_upstream.url)
        try:
            await _collect(up, {"stream": True, "messages": [{"role": "user", "content": name}]})
        finally:
            await up.aclose()

    with pytest.raises(UpstreamError) as info:
        asyncio.run(run())
    assert info.value.status == 502
    if kind:
        assert info.value.kind == kind


def test_upstream_http_error_is_normalised(stub_upstream):
    name = stub_upstream.script("err", [], fault="status", status=500,
                                body='{"object": "error", "message": "engine died", "code": 500}')

    async def run():
        up = Upstream(stub_upstream.url)
        try:
            await _collect(up, {"stream": True, "messages": [{"role": "user", "content": name}]})
        finally:
            await up.aclose()

    with pytest.raises(UpstreamError) as info:
        asyncio.run(run())
    assert info.value.status == 502 and "engine died" in info.value.message
