"""`deepguard serve`: run the proxy, starting vLLM as a child process when no upstream is given."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
from pathlib import Path

from proxy.model_dir import ModelNotReady, check_model_dir, default_model_dir, served_name_for
from proxy.net import free_port
from proxy.vllm_child import Supervisor, TerminalProgress, VllmChild, VllmOptions, VllmStartError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the guard proxy (OpenAI-compatible)",
        description="Run the guard proxy. With --upstream it fronts any server "
        "speaking the OpenAI/vLLM protocol (vLLM in production); "
        "without it, it starts vLLM on the prepared model directory, on a "
        "loopback port behind a fresh API key, and restarts it if it dies.",
    )
    p.add_argument(
        "--upstream",
        help="base URL of the model server, e.g. http://127.0.0.1:8001 "
        "(env DEEPGUARD_UPSTREAM_URL)",
    )
    p.add_argument(
        "--model",
        help="without --upstream: the HF model directory vLLM serves "
        "(default: the prepared deep default, see `deepguard model "
        "prepare`). With --upstream: the upstream's served model name "
        "(default: its first model)",
    )
    p.add_argument("--host", help="bind address (default 127.0.0.1; env DEEPGUARD_SERVER_HOST)")
    p.add_argument("--port", type=int, help="port (default 8000; env DEEPGUARD_SERVER_PORT)")
    p.add_argument("--config", help="YAML or TOML config file (env DEEPGUARD_CONFIG)")
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.app import create_app
    from proxy.config import load_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
            settings.vllm.model = args.model
    if not settings.auth.api_keys and not is_loopback(settings.server.host):
        raise SystemExit(
            "deepguard: refusing to listen on a non-loopback address without API "
            "keys; set DEEPGUARD_AUTH_API_KEYS or bind to 127.0.0.1"
        )

    # uvicorn restores the previous SIGTERM handler after its graceful shutdown and raises the
    # signal again; with the default handler the process would die before `finally` stops the
    # vLLM child. This handler turns that second SIGTERM into a normal exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    child = start_vllm(settings) if not settings.upstream.url else None
    app = create_app(settings)
    supervisor = None
    if child is not None:
        name = settings.model
        # Exported at 0 from the start, so the first restart is an increase alerts can see.
        app.state.metrics.upstream_restarts.labels(name)
        supervisor = Supervisor(
            child,
            on_restart=lambda: app.state.metrics.upstream_restarts.labels(name).inc(),
            startup_timeout_s=settings.vllm.startup_timeout_s,
            backoff_s=settings.vllm.restart_backoff_s,
            max_backoff_s=settings.vllm.max_restart_backoff_s,
        )
        supervisor.start()
    try:
        uvicorn.run(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_level=settings.server.log_level,
            access_log=False,
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=5,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()
        if child is not None:
            child.stop()
    return 0


def start_vllm(settings) -> VllmChild:
    """Start vLLM on the configured (or prepared default) model directory and wait until it is
    ready, showing its progress; point the proxy's upstream settings at it. Exits non-zero with
    the log file's name when vLLM cannot start."""
    cfg = settings.vllm
    try:
        model_dir = check_model_dir(cfg.model or default_model_dir())
    except ModelNotReady as exc:
        raise SystemExit(f"deepguard: {exc}") from None
    settings.model = settings.model or served_name_for(model_dir)
    options = VllmOptions(
        model_dir=str(model_dir),
        served_name=settings.model,
        port=cfg.port or free_port(),
        python=cfg.python,
        max_model_len=cfg.max_model_len,
        kv_cache_gib=cfg.kv_cache_gib,
        extra_args=cfg.extra_args,
        log_file=Path(cfg.log_file) if cfg.log_file else None,
    )
    if settings.upstream.api_key:
        options.api_key = settings.upstream.api_key
    child = VllmChild(options)
    print(
        f"deepguard: starting vLLM on {model_dir} as '{settings.model}' at {child.url} "
        f"(log: {child.log_path})",
        file=sys.stderr,
        flush=True,
    )
    child.start()
    progress = TerminalProgress()
    try:
        took = child.wait_ready(cfg.startup_timeout_s, progress)
    except VllmStartError as exc:
        child.stop()
        progress.done(f"deepguard: {exc}")
        raise SystemExit(1) from None
    except BaseException:  # Ctrl-C while it warms up: leave nothing behind
        child.stop()
        raise
    progress.done(f"deepguard: vLLM ready after {took:.0f}s")
    settings.upstream.url = child.url
    settings.upstream.api_key = options.api_key
    if settings.upstream.tokenizer_path is None:
        # The policy reads the served tokenizer's control tokens from the same directory.
        settings.upstream.tokenizer_path = str(model_dir)
    return child
