"""The upstream client: SSE parsing, error normalisation, timeouts and cancellation.

The network tests run the scripted stub upstream as a real process on loopback.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import pytest

from proxy.net import free_port
from proxy.upstream import Upstream
from proxy.upstream_errors import UpstreamError, error_for_status, normalise_error_body
from tests.support.sse_lines import SSEParser


def feed(lines: list[str]) -> list[str]:
    parser = SSEParser()
    events = [e for e in (parser.feed_line(line) for line in lines) if e is not None]
    last = parser.flush()
    return events + ([last] if last is not None else [])


def test_sse_parser_reads_data_events_and_skips_comments():
    lines = [
        ": keep-alive",
        "",
        'data: {"a": 1}',
        "",
        "event: message",
        "id: 7",
        "data: [DONE]",
        "",
    ]
    assert feed(lines) == ['{"a": 1}', "[DONE]"]


def test_sse_parser_joins_multi_line_data_and_tolerates_crlf_and_no_space():
    assert feed(["data:first\r", "data: second\r", "\r"]) == ["first\nsecond"]


def test_sse_parser_returns_last_event_without_trailing_blank_line():
    assert feed(["data: tail"]) == ["tail"]


@pytest.mark.parametrize(
    "raw,expected",
    [
        (
            b'{"error": {"message": "bad", "type": "BadRequestError", "param": "n", "code": 400}}',
            ("bad", "n", "400"),
        ),
        (
            b'{"object": "error", "message": "too long", "type": "BadRequestError", "code": 400}',
            ("too long", None, "400"),
        ),
        (b'{"error": "Unauthorized"}', ("Unauthorized", None, None)),
        (b"<html>gateway</html>", ("<html>gateway</html>", None, None)),
    ],
)
def test_normalise_error_body_handles_openai_vllm_and_text(raw, expected):
    assert normalise_error_body(400, raw) == expected


def test_error_mapping_keeps_client_errors_and_hides_gateway_faults():
    assert error_for_status(400, b'{"error": {"message": "m", "code": 400}}').status == 400
    assert (
        error_for_status(400, b'{"error": {"message": "m", "code": 400}}').code
        == "upstream_rejected_request"
    )
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
            chunks = await _collect(
                up,
                {
                    "model": "stub-model",
                    "stream": True,
                    "messages": [{"role": "user", "content": name}],
                    "return_token_ids": True,
                },
            )
        finally:
            await up.aclose()
        return chunks

    chunks = asyncio.run(run())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " a b c d e"
    assert [c["choices"][0]["token_ids"] for c in chunks[1:6]] == [
        [1000],
        [1001],
        [1002],
        [1003],
        [1004],
    ]


def test_closing_the_stream_cancels_the_upstream_request_within_a_second(stub_upstream):
    name = stub_upstream.script("slow", [" x"] * 200, delay_s=0.05)
    before = stub_upstream.stats()["cancelled"]

    async def run():
        up = Upstream(stub_upstream.url)
        try:
            got = await _collect(
                up,
                {
                    "model": "stub-model",
                    "stream": True,
                    "messages": [{"role": "user", "content": name}],
                },
                limit=3,
            )
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


@pytest.mark.parametrize(
    "fault,kind", [("close_mid_stream", None), ("malformed_json", "malformed")]
)
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
    name = stub_upstream.script(
        "err",
        [],
        fault="status",
        status=500,
        body='{"object": "error", "message": "engine died", "code": 500}',
    )

    async def run():
        up = Upstream(stub_upstream.url)
        try:
            await _collect(up, {"stream": True, "messages": [{"role": "user", "content": name}]})
        finally:
            await up.aclose()

    with pytest.raises(UpstreamError) as info:
        asyncio.run(run())
    assert info.value.status == 502 and "engine died" in info.value.message


# -- the lean HTTP/1.1 client (proxy/http1.py) and the bytes SSE splitter --------------------

import random  # noqa: E402

from proxy import http1  # noqa: E402
from proxy.sse_split import SSESplitter  # noqa: E402

SSE_STREAM = (
    b': keep-alive\r\n\r\ndata: {"a": 1}\r\n\r\nevent: message\nid: 7\ndata: x\n'
    b'data:y\n\n\ndata: {"b": 2}\r\rdata: [DONE]\n\n'
)


def split_events(pieces: list[bytes]) -> list[bytes]:
    splitter = SSESplitter()
    return [e for piece in pieces for e in splitter.feed(piece)]


def test_sse_splitter_matches_the_line_parser_at_every_split_point():
    lines = SSE_STREAM.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n")
    expected = [e.encode() for e in feed(lines)]
    assert expected == [b'{"a": 1}', b"x\ny", b'{"b": 2}', b"[DONE]"]
    assert split_events([SSE_STREAM]) == expected
    for cut in range(1, len(SSE_STREAM)):  # every CRLF split across two pieces included
        assert split_events([SSE_STREAM[:cut], SSE_STREAM[cut:]]) == expected, cut
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(SSE_STREAM)), 6))
        pieces = [
            SSE_STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(SSE_STREAM)], strict=True)
        ]
        assert split_events(pieces) == expected


def test_sse_splitter_holds_an_unfinished_event_and_refuses_a_huge_one():
    splitter = SSESplitter(max_event_bytes=100)
    assert splitter.feed(b"data: par") == []
    assert splitter.feed(b"tial\n\n") == [b"partial"]
    with pytest.raises(ValueError):
        splitter.feed(b"data: " + b"x" * 200)


class ScriptedServer:
    """An in-process socket server: each connection runs `handler(reader, writer, n)` where n
    counts the connections accepted so far (to check reuse)."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        try:
            await self.handler(self, reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        return await reader.readexactly(length)


def pool_for(url: str, read_timeout_s: float = 2.0) -> http1.Pool:
    return http1.Pool(url, connect_timeout_s=1.0, read_timeout_s=read_timeout_s, max_connections=4)


@asynccontextmanager
async def scripted_response(handler, read_timeout_s: float):
    """The response to REQUEST from a scripted server, through a pool closed on the way out."""
    async with ScriptedServer(handler) as url:
        pool = pool_for(url, read_timeout_s=read_timeout_s)
        try:
            yield await pool.request(REQUEST)
        finally:
            pool.close()


REQUEST = b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}"


async def read_everything(response: http1.Response) -> bytes:
    parts = []
    while (data := await response.read_body()) is not None:
        parts.append(data)
    return b"".join(parts)


def test_http1_decodes_chunked_and_content_length_bodies_and_reuses_the_connection():
    async def handler(server, reader, writer, n):
        await server.read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
        )
        await server.read_request(reader)  # the same connection carries the second request
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nbody")
        await reader.read()

    async def run():
        server = ScriptedServer(handler)
        async with server as url:
            pool = pool_for(url)
            first = await pool.request(REQUEST)
            assert (first.status, await read_everything(first)) == (200, b"hello world")
            first.release_when_complete()
            second = await pool.request(REQUEST)
            assert (second.status, await read_everything(second)) == (201, b"body")
            second.close()
            pool.close()
        return server.connections

    assert asyncio.run(run()) == 1


def test_http1_reads_an_eof_delimited_body_and_never_reuses_a_connection_close_answer():
    async def handler(server, reader, writer, n):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async def run():
        server = ScriptedServer(handler)
        async with server as url:
            pool = pool_for(url)
            for _ in range(2):
                response = await pool.request(REQUEST)
                assert await read_everything(response) == b"until the end"
                response.release_when_complete()
            pool.close()
        return server.connections

    assert asyncio.run(run()) == 2


def test_http1_retries_once_when_a_kept_alive_connection_was_closed_by_the_server():
    async def handler(server, reader, writer, n):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        if n == 1:
            await server.read_request(reader)  # take the second request, then hang up silently
            return
        await reader.read()

    async def run():
        server = ScriptedServer(handler)
        async with server as url:
            pool = pool_for(url)
            for _ in range(2):
                response = await pool.request(REQUEST)
                assert await read_everything(response) == b"ok"
                response.release_when_complete()
            pool.close()
        return server.connections

    assert asyncio.run(run()) == 2


@pytest.mark.parametrize(
    "answer,error",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", http1.ProtocolFailure),  # not HTTP
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel", http1.ProtocolFailure),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", http1.ProtocolFailure),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", http1.ProtocolFailure),
        (b"", http1.ProtocolFailure),  # no status line
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nsl", http1.ReadTimeout),  # then silence
    ],
)
def test_http1_turns_broken_answers_into_errors(answer, error):
    async def handler(server, reader, writer, n):
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()
        if error is http1.ReadTimeout:
            await asyncio.sleep(2)

    async def run():
        async with scripted_response(handler, read_timeout_s=0.3) as response:
            await read_everything(response)

    with pytest.raises(error):
        asyncio.run(run())


def test_http1_read_timeout_counts_each_silence_not_the_whole_body():
    # A body that trickles in for three read timeouts, each gap well under one, is read to its
    # end; the silence after the last byte still times out after about one read timeout (the
    # timer is armed once and re-checked, not armed per read).
    async def handler(server, reader, writer, n):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n")
        for _ in range(9):
            writer.write(b"ab")
            await writer.drain()
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)

    async def run():
        async with scripted_response(handler, read_timeout_s=0.3) as response:
            got = b""
            started = time.monotonic()
            with pytest.raises(http1.ReadTimeout):
                while (piece := await response.read_body()) is not None:
                    got += piece
                    stalled_from = time.monotonic()
            return got, time.monotonic() - started, time.monotonic() - stalled_from

    got, total_s, silence_s = asyncio.run(run())
    assert got == b"ab" * 9
    assert total_s > 0.6  # longer than one read timeout in all
    assert 0.2 < silence_s < 1.5  # the last silence timed out after about one


def test_http1_skips_informational_answers_and_refuses_a_huge_head():
    async def handler(server, reader, writer, n):
        await server.read_request(reader)
        if n == 1:
            writer.write(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n!"
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"p" * (http1.MAX_HEAD_BYTES + 10))
        await writer.drain()
        await reader.read()

    async def run():
        async with ScriptedServer(handler) as url:
            pool = pool_for(url)
            response = await pool.request(REQUEST)
            assert (response.status, await read_everything(response)) == (200, b"!")
            response.close()
            with pytest.raises(http1.ProtocolFailure):
                await pool.request(REQUEST)
            pool.close()

    asyncio.run(run())


def test_upstream_sends_auth_and_request_id_and_maps_a_cut_stream_to_502():
    async def handler(server, reader, writer, n):
        await server.read_request(reader)
        writer.write(
            b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\ndata: {"a": 1}\n\n\r\n'
        )  # then the connection drops
        await writer.drain()

    async def run():
        server = ScriptedServer(handler)
        async with server as url:
            up = Upstream(url + "/prefix", api_key="sk-up", connect_timeout_s=1.0)
            got = []
            try:
                with pytest.raises(UpstreamError) as info:
                    async with up.stream_chat({"messages": []}, "req-abc") as chunks:
                        async for chunk in chunks:
                            got.append(chunk)
            finally:
                await up.aclose()
        return server.heads[0].decode().lower(), got, info.value

    head, got, error = asyncio.run(run())
    assert head.startswith("post /prefix/v1/chat/completions http/1.1\r\n")
    assert "authorization: bearer sk-up\r\n" in head and "x-request-id: req-abc\r\n" in head
    assert got == [{"a": 1}]
    assert (error.status, error.kind, error.code) == (502, "protocol", "upstream_connection_failed")


def test_a_full_pool_waits_for_a_free_connection_then_gives_up_as_connect():
    async def handler(server, reader, writer, n):
        while True:  # keep-alive: answer every request on this connection
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    async def run():
        async with server as url:
            pool = http1.Pool(url, connect_timeout_s=0.2, read_timeout_s=1.0, max_connections=1)
            held = await pool.request(REQUEST)
            with pytest.raises(http1.ConnectFailed):
                await pool.request(REQUEST)
            assert await read_everything(held) == b"ok"
            held.release_when_complete()  # frees the slot: the next request reuses it
            again = await pool.request(REQUEST)
            assert await read_everything(again) == b"ok"
            again.close()
            pool.close()
        return server.connections

    server = ScriptedServer(handler)
    assert asyncio.run(run()) == 1
