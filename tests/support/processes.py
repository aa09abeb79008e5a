"""Start real servers as child processes on loopback, wait for them, stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"


def deepguard_cmd() -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).parent / "deepguard"
    return [str(script)] if script.exists() else [sys.executable, "-m", "proxy.cli"]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log_path: Path
    extra: dict = field(default_factory=dict)

    def wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def launch(
    cmd: list[str], port: int, log_dir: Path, name: str, env: dict[str, str] | None = None
) -> Server:
    """Start a server process without waiting for it (its output goes to a log file)."""
    log_path = log_dir / f"{name}-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPGUARD_")}
    # One worker unless a test asks for more: most tests watch one process (its sockets, its
    # memory, its own per-key counts); tests/proxy/test_serve_workers.py runs several.
    full_env["DEEPGUARD_SERVER_WORKERS"] = "1"
    full_env.update(env or {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
    return Server(proc, f"http://127.0.0.1:{port}", log_path)


def start(
    cmd: list[str],
    port: int,
    ready_path: str,
    log_dir: Path,
    name: str,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Server:
    server = launch(cmd, port, log_dir, name, env)
    server.wait_ready(ready_path, timeout)
    return server
