"""The benchmark's fast upstream: the paced port streams the same answer as the instant one,
one decode step per content chunk, with the end of the stream riding on the last token.

Timing is checked only from below (a timer never fires early by a whole interval), so the test
cannot fail because the machine is slow.
"""

from __future__ import annotations

import sys
import time

import openai
import pytest

from proxy.net import free_port
from tests.support.processes import ROOT, start

PIECES, INTERVAL_MS = 6, 40


@pytest.fixture(scope="module")
def bench_upstream(tmp_path_factory):
    port, paced_port = free_port(), free_port()
    server = start(
        [
            sys.executable,
            str(ROOT / "bench" / "proxy_bench_upstream.py"),
            "--port",
            str(port),
            "--pieces",
            str(PIECES),
            "--paced-port",
            str(paced_port),
            "--token-interval-ms",
            str(INTERVAL_MS),
        ],
        port,
        "/health",
        tmp_path_factory.mktemp("bench-upstream"),
        "bench-upstream",
    )
    yield server.url, f"http://127.0.0.1:{paced_port}"
    server.stop()


def stream(base_url: str) -> tuple[list[str], list[float], str | None]:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="EMPTY", max_retries=0)
    contents, arrivals, finish = [], [], None
    for chunk in client.chat.completions.create(
        model="stub-model", stream=True, messages=[{"role": "user", "content": "hi"}]
    ):
        choice = chunk.choices[0]
        if choice.delta.content:
            contents.append(choice.delta.content)
            arrivals.append(time.perf_counter())
        finish = choice.finish_reason or finish
    return contents, arrivals, finish


def test_paced_port_streams_the_same_answer_one_step_per_chunk(bench_upstream):
    instant_url, paced_url = bench_upstream
    instant, _, instant_finish = stream(instant_url)
    paced, arrivals, paced_finish = stream(paced_url)
    assert paced == instant == [" tok"] * PIECES
    assert paced_finish == instant_finish == "stop"
    # PIECES content chunks are PIECES - 1 intervals apart, first to last.
    assert arrivals[-1] - arrivals[0] >= (PIECES - 1) * INTERVAL_MS / 1000 * 0.9
