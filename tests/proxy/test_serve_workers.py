"""`deepguard serve --workers N`: real processes on loopback, the official client, the stub
upstream. One merged /metrics, per-key limits shared through Redis, SIGTERM stops every worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from proxy.config import Settings
from proxy.key_slots import KeySlots, RedisKeySlots
from proxy.serve_cli import worker_count
from proxy.workers import worker_sockets
from tests.support.processes import deepguard_cmd
from tests.support.prom import parse_samples
from tests.support.redis_server import RedisServer

MODEL = "stub-model"
KEY = "sk-workers-0123456789"


def pids_in(metrics_dir: Path, kind: str) -> set[int]:
    """Processes that wrote values of this kind (`counter`, `gauge_livemin`, ...)."""
    return {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob(f"{kind}_*.db")}


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def ask(base_url: str, prompt: str, api_key: str = "unused") -> str:
    """One streamed request on its own connection (so the kernel may hand it to any worker)."""
    with (
        httpx.Client() as http,
        openai.OpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, http_client=http
        ) as client,
    ):
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_two_workers_share_one_metrics_view_and_stop_together(stub_upstream, start_proxy, tmp_path):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left by an earlier run")
    proxy = start_proxy(
        stub_upstream.url,
        env={
            "DEEPGUARD_MODEL": MODEL,
            "DEEPGUARD_SERVER_WORKERS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
    )
    parent = proxy.server.proc.pid
    prompt = stub_upstream.script("workers-slow", pieces=[" a", " b", " c"], delay_s=0.05)
    sent = 0
    # Concurrent requests on fresh connections until both workers have answered some.
    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            answers = list(pool.map(lambda _: ask(proxy.base_url, prompt), range(8)))
            assert answers == [" a b c"] * 8
            sent += 8
            if len(pids_in(metrics_dir, "counter")) >= 2:
                break
    workers = pids_in(metrics_dir, "counter")
    assert len(workers) == 2 and parent not in workers and 999999 not in workers

    def merged() -> list[tuple[str, dict, float]]:
        return parse_samples(proxy.metrics_text())

    samples = merged()
    series = Counter((name, tuple(sorted(labels.items()))) for name, labels, _ in samples)
    assert [s for s, n in series.items() if n > 1] == []
    text = proxy.metrics_text()
    assert text.count("# TYPE deepguard_request_duration_seconds histogram") == 1

    def value(name: str, **labels: str) -> float:
        found = [v for n, lab, v in merged() if n == name and labels.items() <= lab.items()]
        assert len(found) == 1, (name, found)
        return found[0]

    route = "/v1/chat/completions"
    assert value("deepguard_requests_total", route=route, status="200") == sent
    assert value("deepguard_request_duration_seconds_count", route=route) == sent
    assert value("deepguard_request_duration_seconds_bucket", route=route, le="+Inf") == sent
    assert value("deepguard_upstream_ready", model_name=MODEL) == 1

    # A worker killed outright is replaced and marked dead; the requests it answered still count.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in pids_in(metrics_dir, "gauge_livemin"))
    wait_for(lambda: len(pids_in(metrics_dir, "gauge_livemin")) == 2)
    ask(proxy.base_url, prompt)
    assert value("deepguard_requests_total", route=route, status="200") == sent + 1

    live = pids_in(metrics_dir, "gauge_livemin")
    proxy.stop()
    assert proxy.server.proc.returncode == 0
    wait_for(lambda: all(gone(pid) for pid in live), timeout=10)


def worker_pids(parent: int) -> list[int]:
    """The parent's worker processes (not multiprocessing's resource tracker beside them)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def sockets_on(port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets on local `port` in `state` (/proc/net/tcp: 01 established,
    0A listening)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(fields[9])
    return inodes


def accepted_on(port: int, pids: list[int]) -> dict[int, int]:
    """How many established connections to `port` each process has accepted (a connection still
    waiting in a listen queue belongs to no process yet)."""
    inodes = sockets_on(port, "01")
    held = {}
    for pid in pids:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:
                pass  # closed meanwhile
        held[pid] = sum(link[8:-1] in inodes for link in links if link.startswith("socket:["))
    return held


def test_connections_opened_at_once_spread_over_the_workers(stub_upstream, start_proxy):
    """A burst of keep-alive connections (a client pool opening at once) lands on every worker,
    not on whichever woke first: each worker listens on its own SO_REUSEPORT socket."""
    proxy = start_proxy(
        stub_upstream.url, env={"DEEPGUARD_MODEL": MODEL, "DEEPGUARD_SERVER_WORKERS": "2"}
    )
    port = int(proxy.url.rsplit(":", 1)[1])
    workers = worker_pids(proxy.server.proc.pid)
    assert len(workers) == 2
    # Ready means one worker answers; both sockets listen already (the parent listens on them
    # before starting the workers), so a burst right away is spread too.
    assert len(sockets_on(port, "0A")) == 2
    burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
    try:
        wait_for(lambda: sum(accepted_on(port, workers).values()) == 64, timeout=15)
        per_worker = sorted(accepted_on(port, workers).values())
        # An even hash puts fewer than 16 of 64 on one of two workers about once in 20,000 runs.
        assert per_worker[0] >= 16, per_worker
    finally:
        for conn in burst:
            conn.close()
    # A replaced worker listens on a socket of its own again; the dead one's is gone.
    listening = sockets_on(port, "0A")
    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: len(sockets_on(port, "0A")) == 2 and sockets_on(port, "0A") != listening)
    assert len(sockets_on(port, "0A") & listening) == 1
    assert ask(proxy.base_url, stub_upstream.script("after-burst", pieces=[" ok"])) == " ok"


def test_a_second_server_on_a_taken_port_does_not_start(stub_upstream, start_proxy):
    """SO_REUSEPORT must not let a second `deepguard serve` quietly share the first's port."""
    proxy = start_proxy(
        stub_upstream.url, env={"DEEPGUARD_MODEL": MODEL, "DEEPGUARD_SERVER_WORKERS": "2"}
    )
    port = proxy.url.rsplit(":", 1)[1]
    second = subprocess.run(
        [*deepguard_cmd(), "serve", "--upstream", stub_upstream.url, "--port", port],
        env={**os.environ, "DEEPGUARD_MODEL": MODEL, "DEEPGUARD_SERVER_WORKERS": "2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis-workers"))
    yield server
    server.stop()


def test_a_keys_concurrency_limit_holds_across_workers_through_redis(
    stub_upstream, start_proxy, redis_server
):
    proxy = start_proxy(
        stub_upstream.url,
        env={
            "DEEPGUARD_MODEL": MODEL,
            "DEEPGUARD_SERVER_WORKERS": "2",
            "DEEPGUARD_AUTH_API_KEYS": json.dumps([{"key": KEY, "max_concurrent": 2}]),
            "DEEPGUARD_AUTH_REDIS_URL": redis_server.url,
        },
    )
    prompt = stub_upstream.script("workers-held", pieces=[" x"] * 6, delay_s=0.25)
    start = threading.Barrier(6)

    def attempt(_) -> str:
        start.wait()
        try:
            return ask(proxy.base_url, prompt, KEY)
        except openai.RateLimitError:
            return "429"

    with ThreadPoolExecutor(6) as pool:
        outcomes = Counter(pool.map(attempt, range(6)))
    assert outcomes == {" x" * 6: 2, "429": 4}
    # Every slot was given back.
    assert ask(proxy.base_url, prompt, KEY) == " x" * 6


def settings(**groups) -> Settings:
    return Settings.model_validate(groups)


def test_workers_default_to_one_per_core_unless_a_shared_store_is_missing(monkeypatch):
    monkeypatch.setattr("proxy.serve_cli.usable_cores", lambda: 4)
    assert worker_count(settings()) == 4
    assert worker_count(settings(server={"workers": 1})) == 1
    limited = {"max_concurrent_per_key": 8}
    # Asked for: refused, naming the setting that is missing.
    with pytest.raises(SystemExit, match="auth.redis_url"):
        worker_count(settings(server={"workers": 2}, auth=limited))
    with pytest.raises(SystemExit, match="history.redis_url"):
        worker_count(settings(server={"workers": 2}, policy={"history": "verified"}))
    # By default: one worker, with a warning.
    assert worker_count(settings(auth=limited)) == 1
    shared = {**limited, "redis_url": "redis://127.0.0.1:1/0"}
    assert worker_count(settings(server={"workers": 2}, auth=shared)) == 2


def test_explicit_workers_without_the_shared_store_stop_the_start(stub_upstream):
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPGUARD_")}
    env["DEEPGUARD_AUTH_MAX_CONCURRENT_PER_KEY"] = "4"
    done = subprocess.run(
        deepguard_cmd() + ["serve", "--workers", "2", "--upstream", stub_upstream.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "auth.redis_url" in done.stderr


def test_redis_slots_fall_back_to_this_process_when_redis_is_away():
    auth = Settings.model_validate({"auth": {"max_concurrent_per_key": 1}}).auth

    async def scenario() -> None:
        slots = RedisKeySlots("redis://127.0.0.1:1/0", auth, 16)
        async with slots.hold(None):
            with pytest.raises(Exception) as info:
                async with slots.hold(None):
                    pass
            assert getattr(info.value, "status", None) == 429
        async with slots.hold(None):
            pass
        await slots.aclose()

    asyncio.run(scenario())
    assert KeySlots(auth, 16).limit_for(None) == 1


def test_worker_sockets_share_one_port_even_when_the_system_picks_it():
    sockets = worker_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(sockets) == 3 and len(ports) == 1 and ports != {0}
        for s in sockets:
            s.listen()
        # Listening on it now, so the free-port check refuses it.
        with pytest.raises(OSError):
            worker_sockets("127.0.0.1", ports.pop(), 2)
    finally:
        for s in sockets:
            s.close()
