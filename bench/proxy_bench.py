"""Added cost of the deepguard proxy, beside direct access and LiteLLM, in one run.

Three configurations under the same load, on the same machine, in the same run:
    direct     client -> fast upstream
    deepguard  client -> `deepguard serve` -> fast upstream
    litellm    client -> LiteLLM proxy -> fast upstream
The upstream (bench/proxy_bench_upstream.py) answers instantly from pre-serialised bytes and the
load generator (bench/proxy_bench_load.py) is a separate raw-socket process, so the numbers are the
proxies' own cost. Latency phases are interleaved over the targets in rounds so that CPU noise from
other jobs on the machine spreads evenly over all three.

Measured: non-streamed latency at concurrency 1 (p50/p95/p99), time to first token and time per
streamed chunk at concurrency 1, streamed requests/s and latency at 64 and 256 concurrent streams,
the proxy's CPU time per request, its peak resident memory, and the load generator's own CPU.

The concurrent phases run twice: against the instant upstream (every proxy is CPU-bound there, so
those rows are its ceiling) and against a paced one whose chunks leave `--token-interval-ms`
apart like a model server's decode steps (how a proxy runs in production). Each proxy has a second
instance for the paced port, so the two never share a process.

Run: .venv/bin/python bench/proxy_bench.py [--quick] [--no-litellm] [--workers 1 2] [--write-docs]
         [--references relay nginx]   # a bare relay and nginx beside deepguard: one hop's cost
(`--write-docs` rewrites docs/benchmarks.md with the table; LiteLLM installs itself into
.bench/litellm-venv on first use.)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy_bench_litellm as litellm  # noqa: E402
import proxy_bench_references as references  # noqa: E402
from proxy_bench_procs import Service  # noqa: E402
from proxy_bench_report import render, write_docs  # noqa: E402

from proxy.net import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
MODEL = "stub-model"
# Both proxies check this key (the load generator sends it), so both pay for authentication.
CLIENT_KEY = "sk-bench-0000000000"


PACED = "-paced"  # suffix of the services in front of the paced upstream port


def deepguard_target(workers: int) -> str:
    """`deepguard` for one worker (the historical column), `deepguard-w<N>` for N workers."""
    return "deepguard" if workers == 1 else f"deepguard-w{workers}"


def start_services(args: argparse.Namespace, log_dir: Path) -> dict[str, Service]:
    up_port, paced_port = free_port(), free_port()
    cmd = [
        sys.executable,
        str(BENCH / "proxy_bench_upstream.py"),
        "--port",
        str(up_port),
        "--pieces",
        str(args.pieces),
        "--model-name",
        MODEL,
    ]
    if args.paced_concurrency:
        cmd += ["--paced-port", str(paced_port), "--token-interval-ms", str(args.token_interval_ms)]
    upstream = Service("upstream", cmd, up_port, "/health", log_dir)
    upstream.wait_ready(30)
    services = {"upstream": upstream}
    upstreams = {"": upstream.url}
    if args.paced_concurrency:
        upstream.extra_urls["paced"] = upstreams[PACED] = f"http://127.0.0.1:{paced_port}"
    for suffix, upstream_url in upstreams.items():
        for workers in args.workers:
            dg_port = free_port()
            name = deepguard_target(workers) + suffix
            services[name] = Service(
                name,
                [
                    str(Path(sys.executable).parent / "deepguard"),
                    "serve",
                    "--upstream",
                    upstream_url,
                    "--port",
                    str(dg_port),
                    "--workers",
                    str(workers),
                ],
                dg_port,
                "/readyz",
                log_dir,
                env={
                    "DEEPGUARD_MODEL": MODEL,
                    "DEEPGUARD_SERVER_LOG_LEVEL": "warning",
                    "DEEPGUARD_AUTH_API_KEYS": f'[{{"key": "{CLIENT_KEY}"}}]',
                    # The default per-key limit is half of this (256): 256 streams of one key
                    # would meet it, since the load generator's next request can arrive before
                    # the proxy has released the previous answer's slot.
                    "DEEPGUARD_UPSTREAM_MAX_CONNECTIONS": "1024",
                },
                cwd=ROOT,
            )
        # The references run with as many workers as the widest deepguard column.
        ref_workers = max(args.workers)
        if "relay" in args.references:
            port = free_port()
            services["relay" + suffix] = Service(
                "relay" + suffix,
                references.relay_command(port, ref_workers),
                port,
                "/readyz",
                log_dir,
                env={"RELAY_UPSTREAM": upstream_url, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
            )
        if "nginx" in args.references:
            port = free_port()
            run_dir = log_dir / f"nginx{suffix}"
            services["nginx" + suffix] = Service(
                "nginx" + suffix,
                references.nginx_command(port, upstream_url, ref_workers, run_dir),
                port,
                "/readyz",
                log_dir,
            )
        if not args.no_litellm:
            litellm.ensure_installed()
            ll_port = free_port()
            services["litellm" + suffix] = Service(
                "litellm" + suffix,
                litellm.command(ll_port),
                ll_port,
                "/health/liveliness",
                log_dir,
                env=litellm.environment(upstream_url, CLIENT_KEY),
                cwd=log_dir,
            )
    for name, service in services.items():
        service.wait_ready(180 if name.startswith("litellm") else 60)
    return services


def chat_url(name: str, services: dict[str, Service], paced: bool = False) -> str:
    if name == "direct":
        upstream = services["upstream"]
        return (upstream.extra_urls["paced"] if paced else upstream.url) + "/v1/chat/completions"
    return services[name + (PACED if paced else "")].url + "/v1/chat/completions"


def load(
    url: str,
    stream: bool,
    concurrency: int,
    requests: int | None = None,
    duration: float | None = None,
    warmup: float = 0.0,
    ramp: float = 0.0,
) -> dict:
    cmd = [
        sys.executable,
        str(BENCH / "proxy_bench_load.py"),
        "--url",
        url,
        "--model",
        MODEL,
        "--api-key",
        CLIENT_KEY,
        "--concurrency",
        str(concurrency),
    ]
    cmd += ["--stream"] if stream else []
    cmd += (
        ["--requests", str(requests)]
        if requests
        else ["--duration", str(duration), "--warmup", str(warmup)]
    )
    cmd += ["--ramp", str(ramp)] if ramp else []
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run(cmd + ["--out", out.name], capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr.decode()[-2000:]}")
        return orjson.loads(Path(out.name).read_bytes())


class Recorder:
    """Accumulates samples and CPU per target and phase across rounds."""

    def __init__(self, targets: list[str]) -> None:
        self.data: dict[str, dict[str, dict]] = {t: {} for t in targets}

    def add(
        self, target: str, phase: str, result: dict, proxy_cpu: float, upstream_cpu: float
    ) -> None:
        slot = self.data[target].setdefault(
            phase,
            {
                "latency_s": [],
                "ttft_s": [],
                "per_chunk_s": [],
                "ok": 0,
                "errors": {},
                "completed": 0,
                "wall_s": 0.0,
                "loadgen_cpu_s": 0.0,
                "loadgen_wall_s": 0.0,
                "proxy_cpu_s": 0.0,
                "upstream_cpu_s": 0.0,
            },
        )
        for key in ("latency_s", "ttft_s", "per_chunk_s"):
            slot[key] += result[key]
        slot["ok"] += result["ok"]
        slot["completed"] += result["completed"]
        for what, n in result["errors"].items():
            slot["errors"][what] = slot["errors"].get(what, 0) + n
        slot["wall_s"] += result["wall_s"]
        slot["loadgen_cpu_s"] += result["loadgen_cpu_s"]
        slot["loadgen_wall_s"] += result["total_wall_s"]
        slot["proxy_cpu_s"] += proxy_cpu
        slot["upstream_cpu_s"] += upstream_cpu


def run_phase(
    rec: Recorder, target: str, phase: str, services: dict[str, Service], **load_args
) -> None:
    paced = phase.startswith("paced_")
    proxy = services.get(target + (PACED if paced else ""))
    upstream = services["upstream"]
    p0 = proxy.cpu_seconds() if proxy else 0.0
    u0 = upstream.cpu_seconds()
    result = load(chat_url(target, services, paced), **load_args)
    p1 = proxy.cpu_seconds() if proxy else 0.0
    rec.add(target, phase, result, p1 - p0, upstream.cpu_seconds() - u0)


def plan(args: argparse.Namespace, targets: list[str]) -> list[tuple[str, str, dict]]:
    """(target, phase, load arguments) in run order: rounds of interleaved targets."""
    steps = []
    for target in targets:
        steps.append((target, "warmup", {"stream": True, "concurrency": 8, "requests": 300}))
    per_round_json = max(2, args.latency_requests // args.rounds)
    per_round_stream = max(2, args.stream_requests // args.rounds)
    per_round_load = args.load_seconds / args.rounds
    for _ in range(args.rounds):
        for target in targets:
            steps.append(
                (target, "json_c1", {"stream": False, "concurrency": 1, "requests": per_round_json})
            )
            steps.append(
                (
                    target,
                    "stream_c1",
                    {"stream": True, "concurrency": 1, "requests": per_round_stream},
                )
            )
        # Paced streams start spread over one answer's duration (as real clients arrive); the
        # instant upstream needs no ramp (every proxy is CPU-bound there anyway).
        paced_ramp = args.pieces * args.token_interval_ms / 1000
        for prefix, levels, ramp in (
            ("stream", args.concurrency, 0.0),
            ("paced", args.paced_concurrency, paced_ramp),
        ):
            for concurrency in levels:
                for target in targets:
                    steps.append(
                        (
                            target,
                            f"{prefix}_c{concurrency}",
                            {
                                "stream": True,
                                "concurrency": concurrency,
                                "duration": per_round_load,
                                "warmup": max(0.5, 2 * ramp),
                                "ramp": ramp,
                            },
                        )
                    )
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pieces", type=int, default=16, help="streamed content chunks per answer")
    p.add_argument(
        "--latency-requests",
        type=int,
        default=600,
        help="non-streamed requests per target at concurrency 1",
    )
    p.add_argument(
        "--stream-requests",
        type=int,
        default=450,
        help="streamed requests per target at concurrency 1",
    )
    p.add_argument(
        "--load-seconds",
        type=float,
        default=9.0,
        help="measured seconds per target and concurrency (split over the rounds)",
    )
    p.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    p.add_argument(
        "--paced-concurrency",
        type=int,
        nargs="*",
        default=[64, 256],
        help="concurrent streams against the paced upstream (none: skip those phases)",
    )
    p.add_argument(
        "--token-interval-ms",
        type=float,
        default=10.0,
        help="time between streamed chunks of the paced upstream",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="`deepguard serve --workers` of each deepguard column (e.g. `1 2`: both, same run)",
    )
    p.add_argument(
        "--references",
        nargs="*",
        choices=("relay", "nginx"),
        default=[],
        help="also measure a bare uvicorn relay and/or nginx in front of the same upstream: "
        "what one extra hop costs here (bench/proxy_bench_references.py)",
    )
    p.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM column")
    p.add_argument("--quick", action="store_true", help="a short smoke run (numbers are rough)")
    p.add_argument("--write-docs", action="store_true", help="rewrite docs/benchmarks.md")
    p.add_argument("--json-out", type=Path, help="also write the raw summary as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.latency_requests, args.stream_requests, args.load_seconds = 90, 60, 3.0
    if args.pieces < 1 or args.rounds < 1 or min(args.concurrency + args.paced_concurrency) < 1:
        p.error("--pieces, --rounds and the concurrency levels must be positive")
    if args.token_interval_ms <= 0:
        p.error("--token-interval-ms must be positive")
    if min(args.workers) < 1 or len(set(args.workers)) != len(args.workers):
        p.error("--workers takes distinct positive counts")

    targets = ["direct", *(deepguard_target(n) for n in args.workers), *args.references]
    targets += [] if args.no_litellm else ["litellm"]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        services: dict[str, Service] = {}
        try:
            services = start_services(args, Path(tmp))
            rec = Recorder(targets)
            for target, phase, load_args in tqdm(
                plan(args, targets), desc="proxy bench", unit="phase"
            ):
                run_phase(rec, target, phase, services, **load_args)
            peak = {t: services[t].peak_rss_mib() for t in targets if t in services}
            # Peak memory over both instances of a proxy (the paced one holds more open streams).
            for t in targets:
                if t + PACED in services:
                    peak[t] = max(peak[t], services[t + PACED].peak_rss_mib())
            peak["upstream"] = services["upstream"].peak_rss_mib()
        finally:
            for service in services.values():
                service.stop()
    summary, table = render(rec.data, peak, args, litellm.LITELLM_VERSION)
    print(table)
    if args.json_out:
        args.json_out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if args.write_docs:
        write_docs(ROOT / "docs" / "benchmarks.md", table, args, argv)
    failed = sum(sum(ph["errors"].values()) for t in rec.data.values() for ph in t.values())
    print(
        f"proxy bench: {len(targets)} targets, {failed} failed requests, "
        f"{time.time() - started:.0f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
