"""The benchmark's reference proxies pass the upstream's answers through unchanged, streamed and
not, so the hop they add is all that differs from the direct column."""

from __future__ import annotations

import sys

import openai
import pytest

from bench.proxy_bench_references import nginx_command, nginx_path, relay_command
from proxy.net import free_port
from tests.support.processes import ROOT, start

PIECES = 5


@pytest.fixture(scope="module")
def bench_upstream(tmp_path_factory):
    port = free_port()
    cmd = [sys.executable, str(ROOT / "bench" / "proxy_bench_upstream.py"), "--port", str(port)]
    server = start(
        [*cmd, "--pieces", str(PIECES)],
        port,
        "/health",
        tmp_path_factory.mktemp("references-upstream"),
        "bench-upstream",
    )
    yield server.url
    server.stop()


def answers(base_url: str) -> tuple[list[str], str]:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="EMPTY", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    streamed = [
        chunk.choices[0].delta.content
        for chunk in client.chat.completions.create(
            model="stub-model", messages=messages, stream=True
        )
        if chunk.choices and chunk.choices[0].delta.content
    ]
    whole = client.chat.completions.create(model="stub-model", messages=messages)
    return streamed, whole.choices[0].message.content


def test_the_bare_relay_passes_answers_through(bench_upstream, tmp_path):
    port = free_port()
    relay = start(
        relay_command(port, workers=1),
        port,
        "/readyz",
        tmp_path,
        "relay",
        env={"RELAY_UPSTREAM": bench_upstream, "PYTHONPATH": str(ROOT)},
    )
    try:
        streamed, whole = answers(relay.url)
    finally:
        relay.stop()
    assert (streamed, whole) == answers(bench_upstream)
    assert len(streamed) == PIECES


@pytest.mark.skipif(
    nginx_path() is None,
    reason="nginx is not installed (apt-get install nginx-light)",
)
def test_nginx_passes_answers_through(bench_upstream, tmp_path):
    port = free_port()
    nginx = start(
        nginx_command(port, bench_upstream, 1, tmp_path / "nginx"),
        port,
        "/readyz",
        tmp_path,
        "nginx",
    )
    try:
        streamed, whole = answers(nginx.url)
    finally:
        nginx.stop()
    assert (streamed, whole) == answers(bench_upstream)
