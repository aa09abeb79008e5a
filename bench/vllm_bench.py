"""Throughput and latency of the served default through the proxy, beside vLLM direct.

Starts `deepguard serve` as `make serve` does (the proxy and its vLLM child on the prepared deep
default), unless `--proxy`/`--vllm` point at running ones, then streams the same requests at 1 and
8 concurrent streams, alternating direct and proxied rounds so noise from other jobs spreads over
both. Per configuration: aggregate generated tokens per second, time to first token and
inter-token latency (p50), and the proxy's added time. `--write-docs` rewrites
docs/benchmarks-vllm.md with the table.

    .venv/bin/python bench/vllm_bench.py [--rounds 3] [--streams 1,8] [--max-tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.net import free_port  # noqa: E402
from tests.support.processes import deepguard_cmd, launch  # noqa: E402

MODEL = "deepguard-smollm2"
DOC = ROOT / "docs" / "benchmarks-vllm.md"
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
    ttft: float
    gaps: list[float] = field(default_factory=list)


async def one_stream(
    client: httpx.AsyncClient, url: str, headers: dict, prompt: str, max_tokens: int
) -> Sample:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft, last, gaps, tokens = None, None, [], 0
    async with client.stream(
        "POST", url + "/v1/chat/completions", json=body, headers=headers
    ) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
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
    return Sample(tokens, ttft or float("nan"), gaps)


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


def start_stack() -> tuple[object, str, str, str]:
    port, vllm_port = free_port(), free_port()
    key = "sk-bench-" + secrets.token_hex(8)
    log_dir = ROOT / ".bench"
    log_dir.mkdir(exist_ok=True)
    server = launch(
        deepguard_cmd() + ["serve", "--port", str(port)],
        port,
        log_dir,
        "vllm-bench",
        {"DEEPGUARD_VLLM_PORT": str(vllm_port), "DEEPGUARD_UPSTREAM_API_KEY": key},
    )
    print(f"starting deepguard serve + vLLM (log: {server.log_path}) ...", flush=True)
    server.wait_ready("/readyz", 1800)
    return server, server.url, f"http://127.0.0.1:{vllm_port}", key


def table(results: dict, args) -> str:
    lines = [
        "| streams | path | tok/s (aggregate) | TTFT p50 ms | ITL p50 ms | requests |",
        "|---|---|---|---|---|---|",
    ]
    for streams in args.streams:
        direct, proxied = results[(streams, "direct")], results[(streams, "proxy")]
        for name, r in (("vLLM direct", direct), ("through deepguard", proxied)):
            lines.append(
                f"| {streams} | {name} | {r['tok_s']:.0f} | {r['ttft_p50_ms']:.1f} | "
                f"{r['itl_p50_ms']:.2f} | {r['requests']} |"
            )
        lines.append(
            f"| {streams} | **added by the proxy** | "
            f"{100 * proxied['tok_s'] / direct['tok_s']:.0f}% of direct | "
            f"{proxied['ttft_p50_ms'] - direct['ttft_p50_ms']:+.1f} | "
            f"{proxied['itl_p50_ms'] - direct['itl_p50_ms']:+.2f} | |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", help="running proxy base URL (default: start deepguard serve)")
    parser.add_argument("--vllm", help="running vLLM base URL, with --vllm-key")
    parser.add_argument("--vllm-key", default=os.environ.get("VLLM_API_KEY", ""))
    parser.add_argument("--streams", default="1,8", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-stream", type=int, default=2, help="requests per stream per round")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    server = None
    if args.proxy and args.vllm:
        proxy_url, vllm_url, key = args.proxy, args.vllm, args.vllm_key
    else:
        server, proxy_url, vllm_url, key = start_stack()
    targets = {"direct": (vllm_url, {"Authorization": f"Bearer {key}"}), "proxy": (proxy_url, {})}
    try:
        asyncio.run(phase(proxy_url, {}, 2, 1, 16))  # warm both paths' connections
        runs: dict = {}
        for streams in args.streams:
            for rnd in range(args.rounds):
                order = ("direct", "proxy") if rnd % 2 == 0 else ("proxy", "direct")
                for name in order:
                    url, headers = targets[name]
                    runs.setdefault((streams, name), []).append(
                        asyncio.run(phase(url, headers, streams, args.per_stream, args.max_tokens))
                    )
                    print(
                        f"  streams={streams} round={rnd + 1} {name}: "
                        f"{summarise(runs[(streams, name)][-1:])['tok_s']:.0f} tok/s",
                        flush=True,
                    )
        results = {k: summarise(v) for k, v in runs.items()}
    finally:
        if server is not None:
            server.stop()
    text = table(results, args)
    print(text)
    if args.write_docs:
        DOC.write_text(
            "# Served-model benchmark: the proxy in front of real vLLM\n\n"
            "Generated by `bench/vllm_bench.py --write-docs` (part of `make bench`); do not edit "
            "by hand.\n\nThe served default (`deepguard-smollm2`) on vLLM's CPU build, started "
            "by `deepguard serve` as `make serve` does; the same streamed requests (greedy, "
            f"up to {args.max_tokens} new tokens, {len(PROMPTS)} essay-style prompts) sent "
            "straight to vLLM (with its key) and through the proxy, in alternating rounds "
            f"({args.rounds} per row, {args.per_stream} requests per stream per round). "
            "tok/s = completion tokens (from usage) over the phase's wall time. TTFT and ITL are "
            "measured at the client. The proxy runs its full policy and recovery watch "
            "(observe-only, as by default).\n\n"
            f"Machine: {os.cpu_count()} cores, {platform.machine()}, "
            f"run {time.strftime('%Y-%m-%d')}.\n\n" + text + "\n"
        )
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
