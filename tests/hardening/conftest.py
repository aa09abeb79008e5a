"""Fixtures for the hardening tests: module-scoped proxies (one process start per module, not per
test), a non-recording fast stub for fuzzing and soak, the raw socket-level upstream, and leak
probes (open sockets of a process, its resident memory)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from proxy.net import free_port
from tests.conftest import ProxyHandle, StubHandle
from tests.hardening.raw_upstream import RawUpstream
from tests.support.processes import deepguard_cmd, start

STUB_MODEL = "stub-model"


def launch_proxy(
    upstream_url: str, log_dir: Path, env: dict[str, str] | None = None
) -> ProxyHandle:
    """A `deepguard serve` process, started the way the `start_proxy` fixture does."""
    port = free_port()
    cmd = deepguard_cmd() + ["serve", "--upstream", upstream_url, "--port", str(port)]
    return ProxyHandle(
        start(
            cmd,
            port,
            "/healthz",
            log_dir,
            "proxy",
            {"DEEPGUARD_MODEL": STUB_MODEL, **(env or {})},
            60.0,
        )
    )


def open_sockets(pid: int) -> int:
    """Sockets the process holds open (its /proc fd table)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@pytest.fixture(scope="module")
def quiet_stub(log_dir):
    """The scripted stub without request recording (memory stays flat under many requests)."""
    port = free_port()
    server = start(
        [
            sys.executable,
            "-m",
            "tests.support.stub_upstream",
            "--port",
            str(port),
            "--pieces",
            "4",
            "--no-record",
        ],
        port,
        "/health",
        log_dir,
        "quiet-stub",
    )
    yield StubHandle(server)
    server.stop()


@pytest.fixture(scope="module")
def raw_upstream():
    upstream = RawUpstream()
    yield upstream
    upstream.stop()
