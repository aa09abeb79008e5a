"""What a network and an attacker throw at the proxy, end to end against real processes.

Complements tests/e2e/test_proxy_core.py (connection refused, hung upstream before the answer,
close mid-stream, client disconnects, 413) with: malformed upstream JSON, non-protocol upstream
statuses and bodies, socket-level upstream faults (no status line, not HTTP, broken chunking,
error objects in the stream, a hang after content), hostile client input (deep nesting, invalid
UTF-8, lone surrogates, huge headers, non-object bodies, a stalled body), and a leak check: after
a batch of faults the proxy holds no extra sockets, the upstreams have no open streams, and a
normal request still works. Every error must be OpenAI-shaped with no traceback; none may be 500.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.hardening.conftest import launch_proxy, open_sockets
from tests.hardening.raw_upstream import SSE_HEADERS, content_chunk, http_chunk, sse_event

READ_TIMEOUT_S = "1"


@pytest.fixture(scope="module")
def stub_proxy(stub_upstream, log_dir):
    proxy = launch_proxy(
        stub_upstream.url, log_dir, {"DEEPGUARD_UPSTREAM_READ_TIMEOUT_S": READ_TIMEOUT_S}
    )
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def raw_proxy(raw_upstream, log_dir):
    proxy = launch_proxy(
        raw_upstream.url, log_dir, {"DEEPGUARD_UPSTREAM_READ_TIMEOUT_S": READ_TIMEOUT_S}
    )
    yield proxy
    proxy.stop()


def chat(content: str = "hi", stream: bool = False, **extra) -> dict:
    return {
        "model": "stub-model",
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
        **extra,
    }


def post(
    proxy, body: dict | bytes, headers: dict | None = None, timeout: float = 15
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        proxy.url + "/v1/chat/completions",
        content=content,
        timeout=timeout,
        headers={"content-type": "application/json", **(headers or {})},
    )


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] in ("invalid_request_error", "server_error")
    if code is not None:
        assert error["code"] == code
    return error


def streamed_events(r: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in r.text.splitlines() if line.startswith("data: ")]


def assert_stream_ends_in_error(r: httpx.Response, code: str) -> list[str]:
    """Headers were sent (200); the client must get an error event and no [DONE]."""
    assert r.status_code == 200
    assert "Traceback" not in r.text
    events = streamed_events(r)
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["code"] == code, events[-1]
    return events


def wait_until(predicate, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- the scripted stub: malformed JSON, non-protocol statuses ---------------------------------


def test_malformed_json_in_the_stream(stub_proxy, stub_upstream):
    name = stub_upstream.script("hard-malformed", ["a", "b", "c", "d"], fault="malformed_json")
    assert_stream_ends_in_error(
        post(stub_proxy, chat(name, stream=True)), "upstream_malformed_response"
    )
    assert_openai_error(post(stub_proxy, chat(name)), 502, "upstream_malformed_response")
    assert stub_proxy.metric("deepguard_upstream_errors_total", kind="malformed") == 2.0


@pytest.mark.parametrize(
    "status,body,media,want_status,want_code",
    [
        (
            500,
            "<html><body>Internal Server Error</body></html>",
            "text/html",
            502,
            "upstream_error",
        ),
        (503, "", "text/plain", 502, "upstream_error"),
        (418, "I'm a teapot", "text/plain", 502, "upstream_bad_status"),
        (302, "", "text/plain", 502, "upstream_bad_status"),
        (401, '{"error": "Unauthorized"}', "application/json", 502, "upstream_auth_failed"),
        (
            429,
            '{"error": {"message": "slow down"}}',
            "application/json",
            429,
            "rate_limit_exceeded",
        ),
        (
            400,
            '{"object": "error", "message": "bad max_tokens", "type": "BadRequestError", '
            '"param": "max_tokens", "code": 400}',
            "application/json",
            400,
            "upstream_rejected_request",
        ),
        (200, "<html>not an event stream</html>", "text/html", 502, "upstream_stream_incomplete"),
        (200, '{"id": "x", "choices": []}', "application/json", 502, "upstream_stream_incomplete"),
    ],
)
def test_non_protocol_upstream_answers_map_to_openai_errors(
    stub_proxy, stub_upstream, status, body, media, want_status, want_code
):
    name = stub_upstream.script(
        f"hard-status-{status}-{media}",
        [],
        fault="status",
        status=status,
        body=body,
        media_type=media,
    )
    for stream in (False, True):
        assert_openai_error(post(stub_proxy, chat(name, stream=stream)), want_status, want_code)


# -- socket-level upstream faults ------------------------------------------------------------

FIRST = sse_event(content_chunk("", first=True))


@pytest.mark.parametrize(
    "steps,code",
    [
        (["close"], "upstream_connection_failed"),  # no status line
        ([b"SSH-2.0-OpenSSH_9.6\r\n", "close"], "upstream_connection_failed"),  # not HTTP at all
        (
            [b"HTTP/1.1 200 OK\r\ncontent-length: 999999\r\n\r\n{", "close"],
            "upstream_connection_failed",
        ),  # body cut short
    ],
)
def test_upstream_socket_faults_before_the_answer(raw_proxy, raw_upstream, steps, code):
    raw_upstream.play(*steps)
    for stream in (False, True):
        error = assert_openai_error(post(raw_proxy, chat(stream=stream)), 502)
        assert error["code"] in (code, "upstream_stream_incomplete")


def test_error_object_inside_the_stream(raw_proxy, raw_upstream):
    raw_upstream.play(
        SSE_HEADERS,
        FIRST,
        sse_event(content_chunk("Hel")),
        sse_event({"error": {"message": "CUDA out of memory", "code": 500}}),
        http_chunk(b"data: [DONE]\n\n"),
        b"0\r\n\r\n",
    )
    events = assert_stream_ends_in_error(post(raw_proxy, chat(stream=True)), "upstream_error")
    # The upstream's own words stay in the proxy's log; the client gets ours.
    assert "CUDA out of memory" not in events[-1]
    assert "the model server failed" in events[-1]
    assert_openai_error(post(raw_proxy, chat()), 502, "upstream_error")


def test_chunked_framing_broken_inside_an_event(raw_proxy, raw_upstream):
    raw_upstream.play(
        SSE_HEADERS,
        FIRST,
        sse_event(content_chunk("Hel")),
        b'40\r\ndata: {"id": "chatcmpl-raw", "cho',
        "close",
    )
    assert_stream_ends_in_error(post(raw_proxy, chat(stream=True)), "upstream_connection_failed")
    assert_openai_error(post(raw_proxy, chat()), 502, "upstream_connection_failed")


def test_upstream_hanging_after_content_times_out_in_band(raw_proxy, raw_upstream):
    # The hold-back window and the proxy's first-content read mean a few tokens must arrive
    # before the client sees headers; then the upstream goes silent.
    pieces = [sse_event(content_chunk(w)) for w in ("One", " two", " three", " four")]
    raw_upstream.play(SSE_HEADERS, FIRST, *pieces, 30.0)
    r = post(raw_proxy, chat(stream=True))
    if r.status_code == 200:
        assert_stream_ends_in_error(r, "upstream_timeout")
    else:  # the watch held every token back, so the timeout came before the headers
        assert_openai_error(r, 504, "upstream_timeout")
    assert_openai_error(post(raw_proxy, chat()), 504, "upstream_timeout")
    # The proxy hung up on the silent upstream: no socket left open on the upstream side.
    assert wait_until(lambda: raw_upstream.connections_open == 0)


# -- hostile client input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # far past any parser's depth limit
        b'{"model": "stub-model", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"model": "stub-model", "messages": [{"role": "user", "content": "\xff\xfe\xfd"}]}',
        b'\xef\xbb\xbf{"model": "stub-model", "messages": []}',  # UTF-8 byte-order mark
        b"",
        b"null",
        b"42",
        b'"text"',
        b"[]",
        b"true",
    ],
)
def test_unparseable_or_non_object_bodies_are_400(stub_proxy, body):
    assert_openai_error(post(stub_proxy, body), 400)


@pytest.mark.parametrize("field", ["metadata", "user", "stop", "messages"])
def test_deep_nesting_inside_a_field_is_dropped_or_rejected(stub_proxy, field):
    nested: object = "x"
    for _ in range(900):  # under orjson's limit, so the policy sees it
        nested = {"a": nested} if field == "metadata" else [nested]
    body = chat()
    if field == "messages":
        body["messages"] = [{"role": "user", "content": nested}]
    else:
        body[field] = nested
    r = post(stub_proxy, body)
    if field == "messages":
        assert_openai_error(r, 400)
    else:  # the allowlist drops the field or the policy rejects it; never a server error
        assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
        assert "Traceback" not in r.text


@pytest.mark.parametrize("text", ["\\ud800", "\\udfff tail", "a\\u0000b", "\\uffff\\ufffe"])
def test_odd_unicode_escapes_never_cause_a_server_error(stub_proxy, text):
    raw = (
        '{"model": "stub-model", "messages": [{"role": "user", "content": "' + text + '"}]}'
    ).encode()
    r = post(stub_proxy, raw)
    assert r.status_code < 500, r.text
    assert "Traceback" not in r.text


def test_invalid_utf8_in_header_values(stub_proxy):
    with socket.create_connection(("127.0.0.1", int(stub_proxy.url.rsplit(":", 1)[1]))) as s:
        body = json.dumps(chat()).encode()
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b"authorization: Bearer \xff\xfe\r\nx-request-id: \xc3\x28\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (len(body), body)
        )
        answer = _read_all(s)
    status = int(answer.split(b" ", 2)[1])
    assert status == 200 or 400 <= status < 500
    assert b"Traceback" not in answer


@pytest.mark.parametrize(
    "headers",
    [
        {"x-long": "a" * 60_000},
        {f"x-many-{i}": "b" * 200 for i in range(300)},
        {"authorization": "Bearer " + "k" * 30_000},
    ],
)
def test_very_long_headers_never_cause_a_server_error(stub_proxy, headers):
    try:
        r = post(stub_proxy, chat(), headers=headers)
    except httpx.RemoteProtocolError:
        pass  # the HTTP parser may drop such a connection outright: also fine
    else:
        assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
        assert "Traceback" not in r.text
    assert post(stub_proxy, chat()).status_code == 200


def test_a_client_stalling_mid_body_does_not_block_others(stub_proxy):
    port = int(stub_proxy.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b'content-type: application/json\r\ncontent-length: 5000\r\n\r\n{"mod'
        )
        for _ in range(3):
            r = post(stub_proxy, chat(), timeout=10)
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]


def _read_all(s: socket.socket) -> bytes:
    s.settimeout(10)
    data = b""
    while part := s.recv(65536):
        data += part
    return data


# -- leaks -----------------------------------------------------------------------------------


def test_no_leaked_sockets_or_streams_after_a_batch_of_faults(stub_proxy, stub_upstream):
    pid = stub_proxy.server.proc.pid
    assert post(stub_proxy, chat()).status_code == 200
    before = open_sockets(pid)
    malformed = stub_upstream.script("leak-malformed", ["a", "b", "c", "d"], fault="malformed_json")
    cut = stub_upstream.script("leak-cut", ["a", "b", "c", "d"], fault="close_mid_stream")
    hang = stub_upstream.script("leak-hang", [], fault="hang")
    failing = stub_upstream.script("leak-500", [], fault="status", status=500, body="x")
    slow = stub_upstream.script("leak-slow", [" w"] * 200, delay_s=0.02)
    for _ in range(4):
        for name in (malformed, cut, hang, failing):
            for stream in (False, True):
                assert post(stub_proxy, chat(name, stream=stream)).status_code != 500
        post(stub_proxy, b"[" * 10_000)
        with httpx.stream(
            "POST", stub_proxy.url + "/v1/chat/completions", json=chat(slow, stream=True)
        ) as r:
            next(r.iter_lines())  # read a little, then walk away
    # Every upstream stream ended (cancelled, failed or finished) ...
    assert wait_until(lambda: stub_upstream.stats()["active"] == 0), stub_upstream.stats()
    # ... the proxy's socket count is back where it was (a leak would add one per fault) ...
    assert wait_until(lambda: open_sockets(pid) <= before + 2), (before, open_sockets(pid))
    # ... and it still answers.
    r = post(stub_proxy, chat())
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
