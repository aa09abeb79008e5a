"""Shared fixtures: real servers as processes on loopback.

- `vllm_stack` (session): `deepguard serve` with its own real vLLM child (CPU build) on the
  prepared deep default, as `make serve` runs it (tests/support/vllm_stack.py). Tests using it run
  after all others (the stack starts with the first of them), and tests in modules marked
  `vllm_lifecycle` (they kill and stop vLLM) run last of all.
- `stub_upstream` (session): tests/support/stub_upstream.py, a scripted upstream speaking the vLLM
  protocol. `.url`, `.script(name, pieces=[...], token_ids=None, finish_reason="stop",
  prompt_text=None, delay_s=0, fault=None, status=None, body=None)` -> the user message that
  selects it (`"script:<name>"`), `.requests()` (bodies received), `.request_headers()`, `.clear()`, `.stats()`.
- `start_proxy(upstream_url, env={...}, timeout=60)` (function): a real `deepguard serve`
  process. Returns a handle with `.url`, `.base_url` (…/v1), `.client(api_key=None)` (official
  `openai.OpenAI`, no retries), `.metrics_text()`, `.metric(name, **labels)` (float or None),
  `.stop()`. Proxies are stopped at the end of the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import openai
import pytest

from proxy.net import free_port
from tests.support.processes import SHARED, Server, deepguard_cmd, start
from tests.support.prom import parse_samples
from tests.support.vllm_stack import START_TIMEOUT_S, VllmStack, launch_stack

_stack: VllmStack | None = None


def pytest_collection_modifyitems(session, config, items):
    """Real-vLLM tests last (stable sort: modules stay together), lifecycle ones after them. The
    stack starts when the first of them needs it: vLLM busy-polls a core once up, and the CPU-heavy
    tests before it (real-model evaluations) stall beside it."""

    def order(item) -> int:
        if "vllm_stack" not in item.fixturenames:
            return 0
        return 2 if item.get_closest_marker("vllm_lifecycle") else 1

    items.sort(key=order)
    vllm_items = [item for item in items if order(item)]
    for item in vllm_items:
        # The first of them waits for vLLM's warm-up inside its set-up, which pytest-timeout counts.
        item.add_marker(pytest.mark.timeout(START_TIMEOUT_S + 300))


def pytest_sessionfinish(session, exitstatus):
    """Never leave vLLM running, whatever happened to the tests."""
    if _stack is not None:
        _stack.serve.stop()


@pytest.fixture(scope="session")
def vllm_stack() -> VllmStack:
    global _stack
    if _stack is None:
        _stack = launch_stack()
    try:
        _stack.serve.wait_ready("/readyz", START_TIMEOUT_S)
    except RuntimeError as exc:
        _stack.serve.stop()
        pytest.fail(
            f"deepguard serve with vLLM did not become ready: {exc}\n"
            f"vLLM log tail:\n{_tail(_stack.vllm_log)}"
        )
    yield _stack
    _stack.serve.stop()


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared is missing beside the checkout (expected at {SHARED})")
    return SHARED


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


class StubHandle:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url

    def script(self, name: str, pieces: list[str], **options) -> str:
        spec = {"pieces": pieces, **{k: v for k, v in options.items() if v is not None}}
        httpx.post(f"{self.url}/_scripts", json={name: spec}).raise_for_status()
        return f"script:{name}"

    def requests(self) -> list[dict]:
        return httpx.get(f"{self.url}/_requests").json()

    def request_headers(self) -> list[dict]:
        return httpx.get(f"{self.url}/_request_headers").json()

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_requests").raise_for_status()

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_stats").json()


@pytest.fixture(scope="session")
def stub_upstream(log_dir):
    port = free_port()
    server = start(
        [sys.executable, "-m", "tests.support.stub_upstream", "--port", str(port)],
        port,
        "/health",
        log_dir,
        "stub",
    )
    yield StubHandle(server)
    server.stop()


class ProxyHandle:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        self.base_url = server.url + "/v1"

    def client(self, api_key: str | None = None, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "unused", max_retries=0, **kwargs
        )

    def metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics").text

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample (exact name, labels must match those given), or None."""
        for sample, found, value in parse_samples(self.metrics_text()):
            if sample == name and all(found.get(k) == str(v) for k, v in labels.items()):
                return value
        return None

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def start_proxy(log_dir):
    started: list[ProxyHandle] = []

    def _start(
        upstream_url: str,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
        args: list[str] | None = None,
    ) -> ProxyHandle:
        port = free_port()
        cmd = deepguard_cmd() + [
            "serve",
            "--upstream",
            upstream_url,
            "--port",
            str(port),
            *(args or []),
        ]
        handle = ProxyHandle(start(cmd, port, "/healthz", log_dir, "proxy", env, timeout))
        started.append(handle)
        return handle

    yield _start
    for handle in started:
        handle.stop()
