"""Profile the deepguard proxy's request path under load (cProfile, in-process uvicorn).

Starts the fast upstream, runs the proxy app in this process with cProfile on, drives it with the
load generator, and prints the functions with the most cumulative and own time. This is what the
performance edits to proxy/ were measured with.

Run: .venv/bin/python bench/proxy_bench_profile.py [--stream] [--concurrency 16] [--requests 2000]
         [--token-interval-ms 10]   # a paced upstream: one upstream read per chunk, as in production
         [--pieces 1]   # one content chunk per answer: what each request costs besides its chunks
         [--save FILE]  # the raw profile, for pstats or snakeviz
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench_procs import Service  # noqa: E402

from proxy.net import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stream", action="store_true")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--top", type=int, default=35)
    p.add_argument(
        "--token-interval-ms",
        type=float,
        default=0.0,
        help="pace the upstream's streamed chunks (0: instant)",
    )
    p.add_argument(
        "--pieces",
        type=int,
        default=16,
        help="content chunks per streamed answer (1 shows the per-request cost)",
    )
    p.add_argument("--save", type=Path, help="also write the raw profile here (pstats, snakeviz)")
    args = p.parse_args(argv)

    from proxy.app import create_app
    from proxy.config import Settings

    with tempfile.TemporaryDirectory(prefix="proxy-profile-") as tmp:
        up_port, paced_port = free_port(), free_port()
        cmd = [sys.executable, str(BENCH / "proxy_bench_upstream.py"), "--port", str(up_port)]
        cmd += ["--pieces", str(args.pieces)]
        if args.token_interval_ms:
            cmd += [
                "--paced-port",
                str(paced_port),
                "--token-interval-ms",
                str(args.token_interval_ms),
            ]
        upstream = Service("upstream", cmd, up_port, "/health", Path(tmp))
        try:
            upstream.wait_ready(30)
            os.environ["DEEPGUARD_UPSTREAM_URL"] = (
                f"http://127.0.0.1:{paced_port}" if args.token_interval_ms else upstream.url
            )
            os.environ["DEEPGUARD_MODEL"] = "stub-model"
            port = free_port()
            config = uvicorn.Config(
                create_app(Settings()),
                host="127.0.0.1",
                port=port,
                loop="uvloop",
                http="httptools",
                log_level="warning",
                access_log=False,
            )
            server = uvicorn.Server(config)
            profiler = cProfile.Profile()

            def serve() -> None:
                profiler.enable()
                server.run()
                profiler.disable()

            thread = threading.Thread(target=serve)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            cmd = [
                sys.executable,
                str(BENCH / "proxy_bench_load.py"),
                "--url",
                f"http://127.0.0.1:{port}/v1/chat/completions",
                "--concurrency",
                str(args.concurrency),
                "--requests",
                str(args.requests),
            ]
            cmd += ["--stream"] if args.stream else []
            started = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True)
            wall = time.perf_counter() - started
            server.should_exit = True
            thread.join()
        finally:
            upstream.stop()
    if done.returncode != 0:
        print(done.stderr.decode(), file=sys.stderr)
        return 1
    print(f"{args.requests} requests in {wall:.2f}s ({args.requests / wall:.0f}/s, profiled)")
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(key).print_stats(args.top)
        print(buf.getvalue())
    if args.save:
        profiler.dump_stats(args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
