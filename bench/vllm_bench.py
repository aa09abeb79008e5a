"""Latency the proxy adds to the served default on vLLM, beside LiteLLM in front of the same vLLM.

Starts `deepguard serve` as `make serve` does (the proxy and its vLLM child on the prepared deep
default), unless `--proxy`/`--vllm` point at running ones, and LiteLLM (installed into
.bench/litellm-venv on first use, as bench/proxy_bench.py does) in front of that vLLM with the
minted key. Then streams the same requests at each `--streams` count to vLLM direct, through
deepguard and through LiteLLM, in rounds whose order rotates so noise from other jobs spreads over
all configurations. Per configuration: aggregate generated tokens per second, time to first token
and inter-token latency (p50); per gateway, the TTFT and ITL it adds over direct and LiteLLM's
added / deepguard's added, beside the issue's targets. `--write-docs` rewrites the generated
section of docs/benchmarks-vllm.md.

Two designs (`--design`):
- paired (default): each gateway shares every phase with vLLM direct. Of N concurrent streams,
  half go direct and half through the gateway, in alternation, with the same prompts, so both
  halves sit in the same vLLM batches and see the same CPU. The difference is the hop itself:
  what a deployment whose vLLM has its own GPU would see. Run-to-run drift of a CPU vLLM (here
  26-38 tok/s for one stream within one run) cancels out.
- separate: each target has phases of its own, all N streams through it. Includes what the
  gateway's CPU takes from a CPU vLLM on the same cores, and that drift.

    .venv/bin/python bench/vllm_bench.py [--design paired|separate] [--rounds 3]
        [--streams 1,8,32] [--max-tokens 200] [--no-litellm]
        [--proxy URL --vllm URL --vllm-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import proxy_bench_litellm as litellm  # noqa: E402
from proxy_bench_procs import Service  # noqa: E402
from proxy_bench_report import replace_section  # noqa: E402

from proxy.net import free_port  # noqa: E402

MODEL = "deepguard-smollm2"
DOC = ROOT / "docs" / "benchmarks-vllm.md"
TARGETS = ("direct", "deepguard", "litellm")
LABELS = {"direct": "vLLM direct", "deepguard": "through deepguard", "litellm": "through LiteLLM"}
# LiteLLM refuses to start without a master key; the bench sends it as clients would.
LITELLM_CLIENT_KEY = "sk-bench-litellm-" + secrets.token_hex(8)
# Issue 16's targets: deepguard's added latency at 8 streams, and LiteLLM's over deepguard's.
TARGET_STREAMS = 8
TARGET_TTFT_MS = 1.0
TARGET_ITL_US = 50.0
TARGET_RATIO = 10.0
# docs/benchmarks-vllm.md holds the prose; a run rewrites only the section between these markers.
BEGIN = "<!-- vllm-bench: begin (bench/vllm_bench.py --write-docs rewrites this section) -->"
END = "<!-- vllm-bench: end -->"
PROMPTS = [
    "Write a detailed essay about the history of lighthouses.",
    "Explain in detail how bread is made, step by step.",
    "Describe a long journey across a desert, in many paragraphs.",
    "Write a long story about a clockmaker and her apprentice.",
    "Explain how the water cycle works, with many examples.",
    "Write a detailed guide to growing tomatoes in a small garden.",
    "Describe the life of a honeybee colony through a whole year.",
    "Write a long letter from a sailor to his family at home.",
]


@dataclass
class Sample:
    tokens: int
    ttft: float  # seconds to the first chunk with answer text
    gaps: list[float] = field(default_factory=list)
    first_chunk: float = float("nan")  # seconds to the first chunk of any kind


def chat_body(prompt: str, max_tokens: int, **extra) -> dict:
    """The bench's streamed, greedy chat request; `extra` adds fields."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }


async def one_stream(
    client: httpx.AsyncClient, url: str, headers: dict, prompt: str, max_tokens: int, **extra
) -> Sample:
    """One streamed request; `extra` adds fields to its body (bench/vllm_fields_bench.py)."""
    body = chat_body(prompt, max_tokens, **extra)
    start = time.perf_counter()
    ttft, last, gaps, tokens, first_chunk = None, None, [], 0, None
    async with client.stream(
        "POST", url + "/v1/chat/completions", json=body, headers=headers
    ) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            first_chunk = first_chunk or time.perf_counter() - start
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - start
                else:
                    gaps.append(now - last)
                last = now
    return Sample(tokens, ttft or float("nan"), gaps, first_chunk or float("nan"))


async def phase(
    url: str, headers: dict, streams: int, per_stream: int, max_tokens: int
) -> tuple[float, list[Sample]]:
    """`streams` closed-loop clients, `per_stream` requests each; (wall seconds, samples)."""
    async with httpx.AsyncClient(timeout=600) as client:

        async def worker(index: int) -> list[Sample]:
            return [
                await one_stream(
                    client, url, headers, PROMPTS[(index + i) % len(PROMPTS)], max_tokens
                )
                for i in range(per_stream)
            ]

        start = time.perf_counter()
        results = await asyncio.gather(*(worker(i) for i in range(streams)))
        return time.perf_counter() - start, [s for batch in results for s in batch]


def paired_request(stream: int, request: int, streams: int) -> tuple[int, str]:
    """(side, prompt) of one request of the paired design: side 0 is direct, 1 the gateway.
    The two requests compared ask the same prompt: streams 2k and 2k + 1 at the same step, or,
    with one stream, its requests 2m and 2m + 1."""
    step = request // 2 if streams == 1 else request
    return (stream + request) % 2, PROMPTS[(stream // 2 + step) % len(PROMPTS)]


async def paired_phase(
    direct: tuple[str, dict],
    gateway: tuple[str, dict],
    streams: int,
    per_stream: int,
    max_tokens: int,
    jitter_s: float,
    seed: int,
) -> tuple[float, list[Sample], list[Sample]]:
    """`streams` closed-loop clients sharing one phase: request j of stream i goes direct when
    i + j is even, through the gateway when odd; every direct request has a gateway twin with
    the same prompt (answer lengths differ by prompt, so unpaired prompts skew tok/s and TTFT).
    Each request waits a seeded random 0..`jitter_s` first (not counted in its TTFT): answers of
    one length would otherwise keep every stream in step, and in a burst the direct half always
    reaches vLLM's scheduler first, so the gateway half waits one more prefill step (one CPU
    prefill of 16 prompts is hundreds of ms) for a hop of a millisecond. Random arrivals turn
    that race into what a hop costs on average. Returns (wall, direct samples, gateway samples)."""
    paths = (direct, gateway)
    rng = random.Random(seed)
    waits = [[rng.uniform(0, jitter_s) for _ in range(per_stream)] for _ in range(streams)]
    async with httpx.AsyncClient(timeout=600) as client:

        async def worker(index: int) -> list[tuple[int, Sample]]:
            out = []
            for i in range(per_stream):
                await asyncio.sleep(waits[index][i])
                side, prompt = paired_request(index, i, streams)
                url, headers = paths[side]
                out.append((side, await one_stream(client, url, headers, prompt, max_tokens)))
            return out

        start = time.perf_counter()
        results = await asyncio.gather(*(worker(i) for i in range(streams)))
        wall = time.perf_counter() - start
        done = [pair for batch in results for pair in batch]
        return (
            wall,
            [sample for side, sample in done if side == 0],
            [sample for side, sample in done if side == 1],
        )


def summarise(runs: list[tuple[float, list[Sample]]]) -> dict:
    samples = [s for _, batch in runs for s in batch]
    wall = sum(w for w, _ in runs)
    gaps = [g for s in samples for g in s.gaps]
    return {
        "tok_s": sum(s.tokens for s in samples) / wall,
        "ttft_p50_ms": 1000 * statistics.median(s.ttft for s in samples),
        "itl_p50_ms": 1000 * statistics.median(gaps) if gaps else float("nan"),
        "requests": len(samples),
        "tokens": sum(s.tokens for s in samples),
    }


def start_stack(log_dir: Path) -> tuple[Service, str, str]:
    """`deepguard serve` with its vLLM child; (server, vLLM URL, vLLM key)."""
    port, vllm_port = free_port(), free_port()
    key = "sk-bench-" + secrets.token_hex(8)
    server = Service(
        "vllm-bench-serve",
        [str(Path(sys.executable).parent / "deepguard"), "serve", "--port", str(port)],
        port,
        "/readyz",
        log_dir,
        # One worker, as the earlier runs in docs/benchmarks-vllm.md were measured.
        env={
            "DEEPGUARD_VLLM_PORT": str(vllm_port),
            "DEEPGUARD_UPSTREAM_API_KEY": key,
            "DEEPGUARD_SERVER_WORKERS": "1",
        },
        cwd=ROOT,
    )
    print(f"starting deepguard serve + vLLM (log: {server.log_path}) ...", flush=True)
    server.wait_ready(1800)
    return server, f"http://127.0.0.1:{vllm_port}", key


def start_litellm(vllm_url: str, vllm_key: str, log_dir: Path) -> Service:
    """LiteLLM's proxy in front of the same vLLM, with the key vLLM was given."""
    litellm.ensure_installed()
    port = free_port()
    service = Service(
        "vllm-bench-litellm",
        litellm.command(port, litellm.VLLM_CONFIG),
        port,
        "/health/liveliness",
        log_dir,
        env=litellm.environment(vllm_url, LITELLM_CLIENT_KEY, vllm_key),
        cwd=log_dir,
    )
    print(f"starting LiteLLM {litellm.LITELLM_VERSION} (log: {service.log_path}) ...", flush=True)
    service.wait_ready(300)
    return service


def rotation(targets: list[str], k: int) -> list[str]:
    """`targets` starting at position k: over len(targets) rounds each one runs in every slot."""
    k %= len(targets)
    return targets[k:] + targets[:k]


def baseline(target: str, results: dict, streams: int) -> str:
    """The direct half that ran beside `target` (paired design), else the direct phases."""
    paired = f"direct|{target}"
    return paired if (streams, paired) in results else "direct"


def label(name: str) -> str:
    if name.startswith("direct|"):
        return f"vLLM direct, beside {LABELS[name.split('|')[1]].split()[-1]}"
    return LABELS[name]


def added(results: dict, streams: int, target: str) -> tuple[float, float]:
    """(added TTFT p50 in ms, added ITL p50 in us) of `target` over direct at `streams`."""
    r, d = results[(streams, target)], results[(streams, baseline(target, results, streams))]
    return r["ttft_p50_ms"] - d["ttft_p50_ms"], 1000 * (r["itl_p50_ms"] - d["itl_p50_ms"])


def share(results: dict, streams: int, target: str) -> str:
    """`target`'s tokens per second in % of direct's. Not for the paired design: both halves
    share one phase and its batches, so their rates are equal by construction."""
    base = baseline(target, results, streams)
    if base != "direct":
        return "n/a (paired)"
    return f"{100 * results[(streams, target)]['tok_s'] / results[(streams, base)]['tok_s']:.0f}% of direct"


def ratio(litellm_added: float, deepguard_added: float) -> str:
    if deepguard_added <= 0:
        return "n/a (deepguard +0 or less)"
    return f"{litellm_added / deepguard_added:.1f}x"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def tables(results: dict, streams_list: list[int], with_litellm: bool) -> str:
    gateways = [t for t in TARGETS[1:] if with_litellm or t != "litellm"]
    first = streams_list[0]
    rows = []
    for t in ["direct", *gateways]:
        if (first, t) in results:
            rows.append(t)
        if t != "direct" and (first, f"direct|{t}") in results:
            rows.insert(len(rows) - 1, f"direct|{t}")
    lines = [
        "| streams | path | tok/s (aggregate) | TTFT p50 ms | ITL p50 ms | requests |",
        "|---|---|---|---|---|---|",
    ]
    for streams in streams_list:
        for t in rows:
            r = results[(streams, t)]
            lines.append(
                f"| {streams} | {label(t)} | {r['tok_s']:.0f} | {r['ttft_p50_ms']:.2f} | "
                f"{r['itl_p50_ms']:.3f} | {r['requests']} |"
            )
    lines += [
        "",
        "Added over vLLM direct (p50 of the gateway minus p50 direct; negative: within noise):",
        "",
    ]
    head = "| streams | deepguard TTFT ms | deepguard ITL us | deepguard tok/s |"
    rule = "|---|---|---|---|"
    if with_litellm:
        head += (
            " LiteLLM TTFT ms | LiteLLM ITL us | LiteLLM tok/s |"
            " LiteLLM / deepguard TTFT | LiteLLM / deepguard ITL |"
        )
        rule += "---|---|---|---|---|"
    lines += [head, rule]
    for streams in streams_list:
        dg_ttft, dg_itl = added(results, streams, "deepguard")
        dg_tok = share(results, streams, "deepguard")
        row = f"| {streams} | {dg_ttft:+.2f} | {dg_itl:+.0f} | {dg_tok} |"
        if with_litellm:
            ll_ttft, ll_itl = added(results, streams, "litellm")
            ll_tok = share(results, streams, "litellm")
            row += (
                f" {ll_ttft:+.2f} | {ll_itl:+.0f} | {ll_tok} |"
                f" {ratio(ll_ttft, dg_ttft)} | {ratio(ll_itl, dg_itl)} |"
            )
        lines.append(row)
    return "\n".join(lines)


def targets_report(results: dict, streams_list: list[int], with_litellm: bool) -> str:
    """The issue's targets beside the measured numbers, one line each."""
    lines = []
    if TARGET_STREAMS in streams_list:
        ttft, itl = added(results, TARGET_STREAMS, "deepguard")
        lines.append(
            f"- deepguard added TTFT p50 at {TARGET_STREAMS} streams <= {TARGET_TTFT_MS:g} ms: "
            f"{ttft:+.2f} ms, {verdict(ttft <= TARGET_TTFT_MS)}"
        )
        lines.append(
            f"- deepguard added ITL p50 at {TARGET_STREAMS} streams <= {TARGET_ITL_US:g} us: "
            f"{itl:+.0f} us, {verdict(itl <= TARGET_ITL_US)}"
        )
    else:
        lines.append(f"- deepguard's targets at {TARGET_STREAMS} streams: not measured this run")
    if with_litellm:
        for streams in streams_list:
            dg, ll = added(results, streams, "deepguard"), added(results, streams, "litellm")
            # ll >= 10 * dg also holds, as it should, when deepguard added nothing (dg <= 0).
            parts = [
                f"{what} {ll_v:+.{digits}f} vs {dg_v:+.{digits}f} {unit}, "
                f"{verdict(ll_v >= TARGET_RATIO * dg_v)}"
                for what, ll_v, dg_v, unit, digits in (
                    ("TTFT", ll[0], dg[0], "ms", 2),
                    ("ITL", ll[1], dg[1], "us", 0),
                )
            ]
            lines.append(
                f"- LiteLLM added >= {TARGET_RATIO:g}x deepguard's at {streams} streams: "
                + "; ".join(parts)
            )
    else:
        lines.append(f"- LiteLLM added >= {TARGET_RATIO:g}x deepguard's: not run (--no-litellm)")
    return "\n".join(lines)


def run_rounds(targets: dict, args) -> dict:
    """Rounds outermost, then stream counts, then the targets in a rotating order, so a slow
    stretch of the machine lands on every configuration rather than on one."""
    names = list(targets)
    runs: dict = {}
    for rnd in range(args.rounds):
        for i, streams in enumerate(args.streams):
            for name in rotation(names, rnd + i):
                url, headers = targets[name]
                runs.setdefault((streams, name), []).append(
                    asyncio.run(phase(url, headers, streams, args.per_stream, args.max_tokens))
                )
                print(
                    f"  round={rnd + 1} streams={streams} {name}: "
                    f"{summarise(runs[(streams, name)][-1:])['tok_s']:.0f} tok/s",
                    flush=True,
                )
    return {k: summarise(v) for k, v in runs.items()}


def run_paired_rounds(targets: dict, args) -> dict:
    """Rounds outermost, then stream counts, then each gateway (rotating) in a phase shared with
    vLLM direct; the direct half is kept as `direct|<gateway>`."""
    gateways = [name for name in targets if name != "direct"]
    runs: dict = {}
    for rnd in range(args.rounds):
        for i, streams in enumerate(args.streams):
            for name in rotation(gateways, rnd + i):
                wall, direct, through = asyncio.run(
                    paired_phase(
                        targets["direct"],
                        targets[name],
                        streams,
                        args.per_stream,
                        args.max_tokens,
                        args.jitter_ms / 1000,
                        seed=1000 * rnd + streams,
                    )
                )
                runs.setdefault((streams, f"direct|{name}"), []).append((wall, direct))
                runs.setdefault((streams, name), []).append((wall, through))
                d, g = (summarise(runs[(streams, k)][-1:]) for k in (f"direct|{name}", name))
                print(
                    f"  round={rnd + 1} streams={streams} direct | {name}: "
                    f"TTFT {d['ttft_p50_ms']:.1f} | {g['ttft_p50_ms']:.1f} ms, "
                    f"ITL {d['itl_p50_ms']:.3f} | {g['itl_p50_ms']:.3f} ms",
                    flush=True,
                )
    return {k: summarise(v) for k, v in runs.items()}


def section(text: str, args, started_stack: bool) -> str:
    upstream = (
        "vLLM and proxy started by `deepguard serve` as `make serve` does"
        if started_stack
        else "vLLM and proxy already running (`--vllm`, `--proxy`)"
    )
    gateway = "not run (`--no-litellm`)" if args.no_litellm else litellm.LITELLM_VERSION
    return (
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {upstream}; "
        f"LiteLLM {gateway}; design: {args.design}"
        + (f" (arrival jitter 0-{args.jitter_ms:g} ms)" if args.design == "paired" else "")
        + f"; up to {args.max_tokens} new tokens; "
        f"rounds: {args.rounds}, "
        f"requests per stream per round: {args.per_stream}. "
        f"Machine: {os.cpu_count()} cores, {platform.machine()}.\n\n"
        f"{text}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", help="running proxy base URL (default: start deepguard serve)")
    parser.add_argument("--proxy-key", default="", help="API key the running proxy asks for")
    parser.add_argument("--vllm", help="running vLLM base URL, with --vllm-key")
    parser.add_argument("--vllm-key", default=os.environ.get("VLLM_API_KEY", ""))
    parser.add_argument(
        "--streams", default="1,8,32", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument(
        "--design",
        choices=("paired", "separate"),
        default="paired",
        help="paired: each gateway shares its phases with vLLM direct (the hop itself); "
        "separate: every target in phases of its own (also the CPU it takes from vLLM)",
    )
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=300.0,
        help="paired design: each request waits a random 0..N ms first (random arrivals)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-stream", type=int, default=2, help="requests per stream per round")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM column")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--doc", type=Path, default=DOC, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.streams) < 1 or args.rounds < 1 or args.per_stream < 1:
        parser.error("--streams, --rounds and --per-stream must be positive")
    if bool(args.proxy) != bool(args.vllm):
        parser.error("--proxy and --vllm go together (or neither: start deepguard serve)")

    log_dir = ROOT / ".bench"
    log_dir.mkdir(exist_ok=True)
    services: list[Service] = []
    try:
        if args.proxy:
            proxy_url, vllm_url, key = args.proxy, args.vllm, args.vllm_key
        else:
            server, vllm_url, key = start_stack(log_dir)
            services.append(server)
            proxy_url = server.url
        proxy_headers = {"Authorization": f"Bearer {args.proxy_key}"} if args.proxy_key else {}
        targets = {
            "direct": (vllm_url, {"Authorization": f"Bearer {key}"}),
            "deepguard": (proxy_url, proxy_headers),
        }
        if not args.no_litellm:
            gateway = start_litellm(vllm_url, key, log_dir)
            services.append(gateway)
            targets["litellm"] = (gateway.url, {"Authorization": f"Bearer {LITELLM_CLIENT_KEY}"})
        for url, headers in targets.values():  # warm every path's connections
            asyncio.run(phase(url, headers, 2, 1, 16))
        results = (run_paired_rounds if args.design == "paired" else run_rounds)(targets, args)
    finally:
        for service in reversed(services):
            service.stop()
    with_litellm = not args.no_litellm
    text = (
        tables(results, args.streams, with_litellm)
        + "\n\nIssue 16's targets:\n\n"
        + targets_report(results, args.streams, with_litellm)
    )
    print(text)
    if args.write_docs:
        doc = args.doc.read_text()
        args.doc.write_text(replace_section(doc, section(text, args, not args.proxy), BEGIN, END))
        print(f"rewrote the generated section of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
