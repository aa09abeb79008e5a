"""`deepguard serve`: run the proxy, starting vLLM as a child process when no upstream is given."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import signal
import sys
import tempfile
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
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes sharing the port (default: one per usable core; env "
        "DEEPGUARD_SERVER_WORKERS). See docs/serving.md for what needs Redis with more than one",
    )
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


log = logging.getLogger("deepguard.serve")

# The parent hands the finished settings (CLI flags applied, child vLLM's URL and key filled in)
# to its workers through the environment; they do not read flags, files or DEEPGUARD_* again.
WORKER_SETTINGS_ENV = "_DEEPGUARD_WORKER_SETTINGS"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's name, read when it is imported


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def needs_shared_store(settings) -> list[str]:
    """What would silently break with several workers and no Redis."""
    reasons = []
    if settings.policy.history == "verified" and not settings.history.redis_url:
        reasons.append(
            "policy.history 'verified' needs history.redis_url (a worker must find the answers "
            "another worker recorded)"
        )
    auth = settings.auth
    if not auth.redis_url and (
        auth.max_concurrent_per_key or any(k.max_concurrent for k in auth.api_keys)
    ):
        reasons.append(
            "configured per-key limits need auth.redis_url (without it each worker counts alone, "
            "so a key could hold N times its limit)"
        )
    return reasons


def worker_count(settings) -> int:
    """--workers as asked; by default one per usable core, or one where the configuration needs
    a shared store it lacks. Asking for several workers in that case is an error."""
    asked = settings.server.workers
    n = asked or usable_cores()
    if n == 1:
        return 1
    reasons = needs_shared_store(settings)
    if reasons and asked:
        raise SystemExit(f"deepguard: --workers {n}: " + "; ".join(reasons))
    if reasons:
        log.warning("running one worker: %s", "; ".join(reasons))
        return 1
    return n


def prepare_metrics_dir() -> tuple[str, bool]:
    """The multiprocess metrics directory, emptied: the operator's PROMETHEUS_MULTIPROC_DIR, or a
    fresh temporary one (removed at exit; True in the second element)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        # Files left by an earlier run would add its counts to this one's.
        for stale in path.glob("*.db"):
            stale.unlink()
        return str(path), False
    path = tempfile.mkdtemp(prefix="deepguard-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path, True


def worker_app():
    """The app of one worker (uvicorn's factory, imported by each worker process)."""
    from proxy.app import create_app
    from proxy.config import Settings

    return create_app(Settings.model_validate_json(os.environ[WORKER_SETTINGS_ENV]))


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.config import load_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(args.config)
    if args.host:
        settings.server.host = args.host
    if args.port is not None:
        settings.server.port = args.port
    if args.workers is not None:
        if args.workers < 1:
            raise SystemExit("deepguard: --workers must be at least 1")
        settings.server.workers = args.workers
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
    workers = worker_count(settings)
    metrics_dir, own_dir = prepare_metrics_dir() if workers > 1 else (None, False)
    # Only now may prometheus-client be imported: it picks in-memory or file-backed values once,
    # at import, from PROMETHEUS_MULTIPROC_DIR.
    from proxy.metrics import Metrics

    # uvicorn restores the previous SIGTERM handler after its graceful shutdown and raises the
    # signal again; with the default handler the process would die before `finally` stops the
    # vLLM child. This handler turns that second SIGTERM into a normal exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    # The child vLLM is started and supervised here, once, whatever the number of workers.
    child = start_vllm(settings) if not settings.upstream.url else None
    if workers == 1:
        from proxy.app import create_app

        app = create_app(settings)
        metrics = app.state.metrics
    else:
        app = None
        # The parent's own series (the restart counter) go to its file in the metrics directory,
        # which every worker's /metrics reads.
        metrics = Metrics()
    supervisor = None
    if child is not None:
        name = settings.model
        # Exported at 0 from the start, so the first restart is an increase alerts can see.
        metrics.upstream_restarts.labels(name)
        supervisor = Supervisor(
            child,
            on_restart=lambda: metrics.upstream_restarts.labels(name).inc(),
            startup_timeout_s=settings.vllm.startup_timeout_s,
            backoff_s=settings.vllm.restart_backoff_s,
            max_backoff_s=settings.vllm.max_restart_backoff_s,
        )
        supervisor.start()
    options = dict(
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )
    try:
        if app is not None:
            uvicorn.run(app, **options)
        else:
            serve_workers(settings, workers, metrics_dir, options)
    finally:
        if supervisor is not None:
            supervisor.stop()
        if child is not None:
            child.stop()
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def serve_workers(settings, workers: int, metrics_dir: str, options: dict) -> None:
    import uvicorn

    from proxy.workers import Workers

    os.environ[WORKER_SETTINGS_ENV] = settings.model_dump_json()
    config = uvicorn.Config("proxy.serve_cli:worker_app", factory=True, workers=workers, **options)
    try:
        supervisor = Workers(config, metrics_dir)
    except OSError as exc:
        raise SystemExit(
            f"deepguard: cannot listen on {config.host}:{config.port}: {exc}"
        ) from None
    supervisor.run()


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
