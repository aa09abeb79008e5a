"""Shared fixtures: real servers as processes on loopback.

- `engine_server` (session): `deepguard engine` on the packaged SmolLM2 GGUF as shipped (the
  engine's protocol tests need a model that answers at length). `.url`.
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

import re
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.processes import SHARED, Server, deepguard_cmd, free_port, start
import sys

ENGINE_START_TIMEOUT = 600.0


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared is missing beside the checkout (expected at {SHARED})")
    return SHARED


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def engine_server(log_dir):
    from proxy.engine_location import packaged_base_model

    port = free_port()
    server = start(deepguard_cmd() + ["engine", "--port", str(port), "--model",
                                      str(packaged_base_model())], port, "/health", log_dir,
                   "engine", timeout=ENGINE_START_TIMEOUT)
    yield server
    server.stop()


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
    server = start([sys.executable, "-m", "tests.support.stub_upstream", "--port", str(port)],
                   port, "/health", log_dir, "stub")
    yield StubHandle(server)
    server.stop()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ProxyHandle:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        self.base_url = server.url + "/v1"

    def client(self, api_key: str | None = None, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=api_key or "unused",
                             max_retries=0, **kwargs)

    def metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics").text

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample (exact name, labels must match those given), or None."""
        for line in self.metrics_text().splitlines():
            m = _SAMPLE.match(line)
            if not m or m.group(1) != name:
                continue
            found = dict(_LABEL.findall(m.group(2) or ""))
            if all(found.get(k) == str(v) for k, v in labels.items()):
                return float(m.group(3))
        return None

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def start_proxy(log_dir):
    started: list[ProxyHandle] = []

    def _start(upstream_url: str, env: dict[str, str] | None = None, timeout: float = 60.0,
               args: list[str] | None = None) -> ProxyHandle:
        port = free_port()
        cmd = deepguard_cmd() + ["serve", "--upstream", upstream_url, "--port", str(port),
                                 *(args or [])]
        handle = ProxyHandle(start(cmd, port, "/healthz", log_dir, "proxy", env, timeout))
        started.append(handle)
        return handle

    yield _start
    for handle in started:
        handle.stop()
