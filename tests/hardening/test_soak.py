"""Soak: 256 concurrent streams through the proxy for a while, nothing lost, memory flat.

The load comes from the benchmark's raw-socket load generator (bench/proxy_bench_load.py) in its
own process, against a proxy in front of a non-recording stub. Afterwards: zero failed requests,
every request counted once in deepguard_requests_total and in the overhead histogram, no upstream
stream left open, and resident memory flat between the two halves of the run (the numbers are
printed; run with -s to see them).

CI size: 15 s. The documented long run: DEEPGUARD_SOAK_SECONDS=60.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.hardening.conftest import launch_proxy, rss_mib
from tests.support.processes import ROOT
from tests.support.prom import parse_samples

SOAK_SECONDS = float(os.environ.get("DEEPGUARD_SOAK_SECONDS", "15"))
STREAMS = int(os.environ.get("DEEPGUARD_SOAK_STREAMS", "256"))
ROUTE = "/v1/chat/completions"


@pytest.fixture(scope="module")
def soak_proxy(quiet_stub, log_dir):
    # One client opens every stream here: lift the per-key concurrency limit (half the upstream
    # connections by default) above the stream count; the soak measures the proxy, not the limit.
    proxy = launch_proxy(
        quiet_stub.url,
        log_dir,
        {
            "DEEPGUARD_SERVER_LOG_LEVEL": "warning",
            "DEEPGUARD_AUTH_MAX_CONCURRENT_PER_KEY": str(2 * STREAMS),
        },
    )
    yield proxy
    proxy.stop()


def requests_counted(proxy, status: str | None = None) -> float:
    """Sum of deepguard_requests_total over the chat route (one status, or all of them)."""
    return sum(
        value
        for name, labels, value in parse_samples(proxy.metrics_text())
        if name == "deepguard_requests_total"
        and labels.get("route") == ROUTE
        and status in (None, labels.get("status"))
    )


def run_load(proxy, seconds: float, out) -> dict:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "proxy_bench_load.py"),
            "--url",
            proxy.url + ROUTE,
            "--stream",
            "--concurrency",
            str(STREAMS),
            "--duration",
            str(seconds),
            "--out",
            str(out),
        ],
        check=True,
        timeout=seconds + 120,
    )
    return json.loads(out.read_text())


def test_soak_256_streams_no_failures_flat_memory_exact_metrics(soak_proxy, quiet_stub, tmp_path):
    pid = soak_proxy.server.proc.pid
    body = {
        "model": "stub-model",
        "stream": True,
        "messages": [{"role": "user", "content": "warm up"}],
    }
    for _ in range(20):  # imports, pools and caches settle before the baseline
        httpx.post(soak_proxy.url + ROUTE, json=body, timeout=30).raise_for_status()
    rss_start = rss_mib(pid)
    counted_before = requests_counted(soak_proxy)
    overhead_before = soak_proxy.metric("deepguard_proxy_overhead_seconds_count") or 0.0

    # Two halves: the first grows memory to the working set of 256 streams; a leak would keep
    # growing it through the second.
    started = time.monotonic()
    first = run_load(soak_proxy, SOAK_SECONDS / 2, tmp_path / "first.json")
    rss_mid = rss_mib(pid)
    second = run_load(soak_proxy, SOAK_SECONDS / 2, tmp_path / "second.json")
    rss_end = rss_mib(pid)
    elapsed = time.monotonic() - started
    sent = first["sent"] + second["sent"]
    print(
        f"\nsoak: {STREAMS} streams, {elapsed:.1f}s, {sent} requests ({sent / elapsed:.0f}/s), "
        f"statuses {first['statuses']} + {second['statuses']}, "
        f"errors {first['errors']} + {second['errors']}, "
        f"RSS start {rss_start:.1f} MiB, after half {rss_mid:.1f} MiB, end {rss_end:.1f} MiB"
    )

    for half in (first, second):
        assert half["sent"] >= STREAMS  # every stream got requests through
        assert half["errors"] == {}
        assert half["statuses"] == {"200": half["sent"]}
        assert half["completed"] == half["sent"]
    # Each request counted exactly once, as a success, and timed once.
    assert requests_counted(soak_proxy, "200") - counted_before == sent
    assert requests_counted(soak_proxy) - counted_before == sent
    overhead_after = soak_proxy.metric("deepguard_proxy_overhead_seconds_count") or 0.0
    assert overhead_after - overhead_before == sent
    # No upstream stream left behind; memory flat once the working set is reached (loose bound:
    # allocator noise, not a threshold on speed).
    assert quiet_stub.stats()["active"] == 0
    assert rss_end < rss_mid * 1.25 + 16, (rss_start, rss_mid, rss_end)
