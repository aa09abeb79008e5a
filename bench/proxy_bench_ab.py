"""A/B: the working tree's proxy against the same tree with some files at HEAD, interleaved.

On a machine shared with other jobs a single benchmark run moves by 2x from one minute to the
next; comparing two runs taken minutes apart says nothing. This starts both proxies at once (the
base is a copy of the working tree's `proxy/` package with the named files restored from a git
revision, so other people's uncommitted work is on both sides), sends alternating rounds of the
same load to each, and reports the proxy's CPU time per request (the most noise-robust number)
and the median latency, so a performance edit is judged by paired rounds.

Run: .venv/bin/python bench/proxy_bench_ab.py proxy/upstream.py [--rev HEAD] [--stream]
        [--concurrency 8] [--requests 400] [--rounds 6] [--token-interval-ms 10]
     .venv/bin/python bench/proxy_bench_ab.py --whole --rev 57972e8 ...   # the whole package then
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench import load  # noqa: E402
from proxy_bench_procs import Service  # noqa: E402

from proxy.net import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent


def start_proxy(name: str, tree: Path, upstream_url: str, log_dir: Path) -> Service:
    port = free_port()
    # PYTHONPATH puts the given tree's `proxy` package ahead of the editable install.
    service = Service(
        name,
        [
            sys.executable,
            "-m",
            "proxy.cli",
            "serve",
            "--upstream",
            upstream_url,
            "--port",
            str(port),
        ],
        port,
        "/readyz",
        log_dir,
        env={
            "PYTHONPATH": str(tree),
            # One worker (as an environment setting: revisions before `--workers` ignore it).
            "DEEPGUARD_SERVER_WORKERS": "1",
            "DEEPGUARD_MODEL": "stub-model",
            "DEEPGUARD_SERVER_LOG_LEVEL": "warning",
        },
        cwd=tree,
    )
    service.wait_ready(60)
    return service


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", help="files under proxy/ that the base takes from --rev")
    p.add_argument("--rev", default="HEAD", help="git revision the base's files come from")
    p.add_argument(
        "--whole",
        action="store_true",
        help="the base is the whole proxy/ package at --rev (how much did the path change since?)",
    )
    p.add_argument("--stream", action="store_true")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--requests", type=int, default=400, help="per round and side")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument(
        "--token-interval-ms",
        type=float,
        default=0.0,
        help="drive both sides through the paced upstream port (0: the instant one)",
    )
    args = p.parse_args(argv)
    if bool(args.files) == args.whole:
        p.error("name the files the base takes from --rev, or --whole for all of proxy/")

    with tempfile.TemporaryDirectory(prefix="proxy-ab-") as tmp:
        tmp_path = Path(tmp)
        base_tree = tmp_path / "base"
        if args.whole:
            base_tree.mkdir()
            archive = subprocess.run(
                ["git", "archive", args.rev, "proxy"], cwd=ROOT, check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(base_tree)], input=archive, check=True)
        else:
            shutil.copytree(
                ROOT / "proxy", base_tree / "proxy", ignore=shutil.ignore_patterns("__pycache__")
            )
        for name in args.files:
            if not name.startswith("proxy/"):
                p.error(f"{name}: only files under proxy/ can be compared")
            old = subprocess.run(
                ["git", "show", f"{args.rev}:{name}"], cwd=ROOT, check=True, capture_output=True
            ).stdout
            (base_tree / name).write_bytes(old)
        services: list[Service] = []
        try:
            up_port, paced_port = free_port(), free_port()
            cmd = [sys.executable, str(BENCH / "proxy_bench_upstream.py"), "--port", str(up_port)]
            if args.token_interval_ms:
                cmd += ["--paced-port", str(paced_port)]
                cmd += ["--token-interval-ms", str(args.token_interval_ms)]
            upstream = Service("upstream", cmd, up_port, "/health", tmp_path)
            services.append(upstream)
            upstream.wait_ready(30)
            upstream_url = (
                f"http://127.0.0.1:{paced_port}" if args.token_interval_ms else upstream.url
            )
            sides = {
                "base": start_proxy("base", base_tree, upstream_url, tmp_path),
                "work": start_proxy("work", ROOT, upstream_url, tmp_path),
            }
            services += sides.values()
            cpu = {k: [] for k in sides}
            p50 = {k: [] for k in sides}
            latencies: dict[str, list[float]] = {k: [] for k in sides}
            for r in range(args.rounds):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for name in order:
                    proxy = sides[name]
                    before = proxy.cpu_seconds()
                    result = load(
                        proxy.url + "/v1/chat/completions",
                        stream=args.stream,
                        concurrency=args.concurrency,
                        requests=args.requests,
                    )
                    cpu[name].append((proxy.cpu_seconds() - before) / max(1, result["ok"]))
                    p50[name].append(statistics.median(result["latency_s"]))
                    latencies[name] += result["latency_s"]
                print(
                    f"round {r + 1}: CPU/request base {cpu['base'][-1] * 1e3:.3f} ms, "
                    f"work {cpu['work'][-1] * 1e3:.3f} ms",
                    file=sys.stderr,
                )
        finally:
            for service in services:
                service.stop()
    for name in ("base", "work"):
        print(
            f"{name}: proxy CPU per request median {statistics.median(cpu[name]) * 1e3:.3f} ms, "
            f"latency p50 median {statistics.median(p50[name]) * 1e3:.2f} ms, "
            f"pooled p99 {statistics.quantiles(latencies[name], n=100)[98] * 1e3:.2f} ms "
            f"({args.rounds} rounds x {args.requests} requests, c={args.concurrency}, "
            f"{'streamed' if args.stream else 'non-streamed'}"
            f"{f', paced {args.token_interval_ms:g} ms/chunk' if args.token_interval_ms else ''})"
        )
    gain = 1 - statistics.median(cpu["work"]) / statistics.median(cpu["base"])
    print(f"CPU per request: {gain * 100:+.1f}% saved by the working tree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
