"""Processes for the proxy benchmark: start a server and wait for it, read its CPU time and memory
from /proc (the whole process tree, since LiteLLM may fork workers), stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(p) for p in task.read_text().split()]
        except OSError:
            pass
    return out


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the given processes (fields 14 and 15 of /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def memory_mib(pids: list[int], field: str = "VmHWM") -> float:
    """Summed VmHWM (peak resident set) or VmRSS (current) of the processes, in MiB."""
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


class Service:
    """A server process in its own session (so its whole group can be stopped), logged to a file."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        port: int,
        ready_path: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.extra_urls: dict[str, str] = {}  # other ports the same process listens on
        self.log_path = log_dir / f"{name}.log"
        self._ready_path = ready_path
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; log tail:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + self._ready_path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"{self.name} not ready after {timeout_s:.0f}s; log tail:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def peak_rss_mib(self) -> float:
        return memory_mib(self.pids(), "VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass
