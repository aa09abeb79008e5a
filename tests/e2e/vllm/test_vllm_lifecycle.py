"""`deepguard serve` owns its vLLM child: it shows the warm-up, fails clearly when vLLM cannot
start, restarts it when it dies, and takes it (with its engine processes) down on exit.

These tests kill and stop the session's real vLLM, so they run after every other test
(marker `vllm_lifecycle`, ordered in tests/conftest.py), in the order written here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from proxy.net import free_port
from tests.conftest import ProxyHandle
from tests.support.processes import ROOT, deepguard_cmd
from tests.support.vllm_stack import SERVED_NAME, VllmStack

pytestmark = pytest.mark.vllm_lifecycle


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (
                (task / "children").read_text().split() if (task / "children").exists() else []
            )
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def serve_once(env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPGUARD_")} | env
    return subprocess.run(
        deepguard_cmd() + ["serve", "--port", str(free_port())],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serve_says_what_vllm_is_doing_while_it_warms_up(vllm_stack: VllmStack):
    log = vllm_stack.serve.log_path.read_text()
    assert "starting vLLM on" in log and f"log: {vllm_stack.vllm_log}" in log
    assert "deepguard: vLLM warming up" in log
    assert "deepguard: vLLM ready after" in log


def test_an_unprepared_default_model_is_a_clear_error(tmp_path):
    done = serve_once({"DEEPGUARD_CACHE": str(tmp_path)}, timeout=60)
    assert done.returncode != 0
    assert "deepguard model prepare" in done.stderr and "Traceback" not in done.stderr


def test_vllm_that_cannot_start_is_a_clear_error_naming_its_log(tmp_path):
    log = tmp_path / "vllm.log"
    done = serve_once(
        {
            "DEEPGUARD_VLLM_EXTRA_ARGS": json.dumps(["--no-such-vllm-flag"]),
            "DEEPGUARD_VLLM_LOG_FILE": str(log),
        }
    )
    assert done.returncode == 1
    assert f"see its log: {log}" in done.stderr and "Traceback" not in done.stderr
    assert "--no-such-vllm-flag" in log.read_text()  # vLLM's own complaint is in the log


def test_a_dead_vllm_fails_readiness_ends_requests_with_502_and_is_restarted(vllm_stack):
    proxy = ProxyHandle(vllm_stack.serve)
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
    (vllm_pid,) = [
        pid for pid in descendants(vllm_stack.serve.proc.pid) if os.getpgid(pid) == pid
    ]  # vLLM leads its own process group
    in_flight: list[BaseException | object] = []

    def long_request() -> None:
        try:
            in_flight.append(
                client.chat.completions.create(
                    model=SERVED_NAME,
                    max_tokens=1500,
                    messages=[
                        {
                            "role": "user",
                            "content": "Write a very long story about a "
                            "lighthouse keeper, with many chapters.",
                        }
                    ],
                )
            )
        except BaseException as exc:  # noqa: BLE001 - the failure is what the test reads
            in_flight.append(exc)

    worker = threading.Thread(target=long_request)
    worker.start()
    assert wait_for(lambda: vllm_stack.vllm_metric("vllm:num_requests_running") == 1, 60)
    os.killpg(vllm_pid, signal.SIGKILL)
    worker.join(60)
    (outcome,) = in_flight
    assert isinstance(outcome, openai.APIStatusError), outcome
    assert outcome.status_code == 502 and outcome.code.startswith("upstream_")
    assert wait_for(lambda: httpx.get(proxy.url + "/readyz").status_code == 503, 15)

    assert wait_for(lambda: httpx.get(proxy.url + "/readyz").status_code == 200, 900, step=2)
    assert proxy.metric("deepguard_upstream_restarts_total", model_name=SERVED_NAME) == 1
    answer = client.chat.completions.create(
        model=SERVED_NAME,
        max_tokens=8,
        temperature=0,
        messages=[{"role": "user", "content": "Say hi."}],
    )
    assert answer.choices[0].message.content.strip()


def test_stopping_serve_stops_vllm_and_its_engine_processes(vllm_stack):
    family = descendants(vllm_stack.serve.proc.pid)
    assert len(family) >= 2, "expected vLLM's API server and its engine core process"
    vllm_stack.serve.stop()  # SIGTERM, as a supervisor or Ctrl-C sends it
    assert vllm_stack.serve.proc.returncode is not None
    assert wait_for(lambda: not any(alive(pid) for pid in family), 30), [
        pid for pid in family if alive(pid)
    ]
