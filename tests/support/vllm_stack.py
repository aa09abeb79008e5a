"""The real serving stack for end-to-end tests: `deepguard serve` starting its own vLLM child on
the prepared default model, exactly as `make serve` runs it, once per test session.

vLLM takes minutes to warm up on a 2-core CPU and then busy-polls a core, so the tests that need it
run last (tests/conftest.py) and the stack starts with the first of them. The test fixes vLLM's port and API key (settings `vllm.port`,
`upstream.api_key`) so tests can also talk to vLLM directly, as an operator or evaluation would.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from proxy.net import free_port
from tests.support.processes import Server, deepguard_cmd, launch
from tests.support.prom import parse_samples

SERVED_NAME = "deepguard-smollm2"
START_TIMEOUT_S = 1200.0


@dataclass
class VllmStack:
    serve: Server  # the `deepguard serve` process (vLLM is its child)
    vllm_url: str
    vllm_key: str
    vllm_log: Path

    @property
    def url(self) -> str:
        return self.serve.url

    def vllm(self, timeout: float = 120.0) -> httpx.Client:
        """A client for vLLM itself, with the key `deepguard serve` gave it."""
        return httpx.Client(
            base_url=self.vllm_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {self.vllm_key}"},
        )

    def vllm_metric(self, name: str, **labels: str) -> float:
        """Sum of vLLM's samples called `name` whose labels include `labels`."""
        text = httpx.get(f"{self.vllm_url}/metrics", timeout=10).text
        return sum(
            value
            for sample, found, value in parse_samples(text)
            if sample == name and all(found.get(k) == v for k, v in labels.items())
        )


def launch_stack(log_dir: Path | None = None) -> VllmStack:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="deepguard-vllm-stack-"))
    port, vllm_port = free_port(), free_port()
    key = "sk-vllm-test-" + secrets.token_hex(8)
    vllm_log = log_dir / "vllm.log"
    env = {
        "DEEPGUARD_VLLM_PORT": str(vllm_port),
        "DEEPGUARD_UPSTREAM_API_KEY": key,
        "DEEPGUARD_VLLM_LOG_FILE": str(vllm_log),
        "DEEPGUARD_VLLM_RESTART_BACKOFF_S": "1",
        # The readiness gauge should follow a dead vLLM within a second in the restart test.
        "DEEPGUARD_UPSTREAM_PROBE_INTERVAL_S": "1",
    }
    serve = launch(
        deepguard_cmd() + ["serve", "--port", str(port)], port, log_dir, "serve-vllm", env
    )
    return VllmStack(serve, f"http://127.0.0.1:{vllm_port}", key, vllm_log)
