"""`deepguard serve`: run the proxy, starting the local engine when no upstream is given."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import socket
import subprocess
import sys
import time

import httpx


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the guard proxy (OpenAI-compatible)",
                       description="Run the guard proxy. With --upstream it fronts any server "
                                   "speaking the OpenAI/vLLM protocol (vLLM in production); "
                                   "without it, it starts `deepguard engine` on a loopback port.")
    p.add_argument("--upstream", help="base URL of the model server, e.g. http://127.0.0.1:8001 "
                                      "(env DEEPGUARD_UPSTREAM_URL)")
    p.add_argument("--model", help="without --upstream: the model to load (HF directory or GGUF "
                                   "file; default: the packaged default model). With --upstream: "
                                   "the upstream's served model name (default: its first model)")
    p.add_argument("--host", help="bind address (default 127.0.0.1; env DEEPGUARD_SERVER_HOST)")
    p.add_argument("--port", type=int, help="port (default 8000; env DEEPGUARD_SERVER_PORT)")
    p.add_argument("--config", help="YAML or TOML config file (env DEEPGUARD_CONFIG)")
    p.set_defaults(func=run)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EngineProcess:
    """The local engine as a child process on a free loopback port."""

    def __init__(self, model: str | None, startup_timeout_s: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        from proxy.engine_location import served_name_for
        cmd = [sys.executable, "-m", "proxy.engine", "--host", "127.0.0.1", "--port",
               str(self.port)]
        if model:
            cmd += ["--model", model, "--served-model-name", served_name_for(model)]
        self.proc = subprocess.Popen(cmd)
        self.timeout = startup_timeout_s

    def wait_ready(self) -> None:
        start = time.monotonic()
        print(f"deepguard: starting the local engine on {self.url} ...", file=sys.stderr,
              flush=True)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"deepguard: the local engine exited with code "
                                 f"{self.proc.returncode} before it was ready")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    print(f"deepguard: engine ready after {time.monotonic() - start:.1f}s",
                          file=sys.stderr, flush=True)
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() - start > self.timeout:
                self.stop()
                raise SystemExit(f"deepguard: the local engine was not ready after "
                                 f"{self.timeout:.0f}s")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.app import create_app
    from proxy.config import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.config)
    if args.host:
        settings.server.host = args.host
    if args.port is not None:
        settings.server.port = args.port
    if args.upstream:
        settings.upstream.url = args.upstream
    if args.model:
        if settings.upstream.url:
            settings.model = args.model
        else:
            settings.engine.model = args.model
    if not settings.auth.api_keys and not is_loopback(settings.server.host):
        raise SystemExit("deepguard: refusing to listen on a non-loopback address without API "
                         "keys; set DEEPGUARD_AUTH_API_KEYS or bind to 127.0.0.1")

    # uvicorn restores the previous SIGTERM handler after its graceful shutdown and raises the
    # signal again; with the default handler the process would die before `finally` stops the
    # engine child. This handler turns that second SIGTERM into a normal exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    engine = None
    if not settings.upstream.url:
        from proxy.engine_location import ModelNotFoundError, resolve_model
        try:
            model = resolve_model(settings.engine.model)
        except ModelNotFoundError as exc:
            raise SystemExit(f"deepguard: {exc}") from None
        engine = EngineProcess(str(model), settings.engine.startup_timeout_s)
        settings.upstream.url = engine.url
        if settings.upstream.tokenizer_path is None:
            # The policy reads the served tokenizer's control tokens (HF dir or GGUF).
            settings.upstream.tokenizer_path = str(model)
    try:
        if engine:
            engine.wait_ready()
        uvicorn.run(create_app(settings), host=settings.server.host, port=settings.server.port,
                    log_level=settings.server.log_level, access_log=False,
                    loop="uvloop", http="httptools", timeout_graceful_shutdown=5)
    finally:
        if engine:
            engine.stop()
    return 0
