"""What do the fields the proxy adds to every upstream request cost inside vLLM itself?

The proxy asks vLLM for `return_token_ids` (to check the answer's first tokens) and, on chat,
`return_prompt_text` (to check the prompt vLLM actually rendered). At one stream the proxy adds
about 1.4 ms to time to first token even on a core of its own (docs/benchmarks-vllm.md), against
~0.4 ms against the stub upstream, which answers those fields for free. This bench sends the same
one-stream requests straight to vLLM, with and without those fields, in random alternation on the
same process, and prints the time to first token of each variant and the paired differences.

    .venv/bin/python bench/vllm_fields_bench.py [--requests 60] [--max-tokens 16]
        [--vllm URL --vllm-key KEY]

Without `--vllm` it starts `deepguard serve` (and so vLLM) as bench/vllm_bench.py does.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vllm_bench import PROMPTS, one_stream, start_stack  # noqa: E402

# Each variant: the fields sent on top of the bench's plain streamed request (which, like the
# proxy's, asks for stream_options.include_usage).
VARIANTS = {
    "plain": {},
    "return_token_ids": {"return_token_ids": True},
    "proxy's fields": {"return_token_ids": True, "return_prompt_text": True},
}


async def first_token_ms(
    client: httpx.AsyncClient, url: str, key: str, prompt: str, max_tokens: int, extra: dict
) -> tuple[float, float]:
    """(ms to the first chunk of any kind, ms to the first chunk with answer text)."""
    headers = {"Authorization": f"Bearer {key}"}
    sample = await one_stream(client, url, headers, prompt, max_tokens, **extra)
    return sample.first_chunk * 1e3, sample.ttft * 1e3


async def run(url: str, key: str, requests: int, max_tokens: int, seed: int) -> dict:
    rng = random.Random(seed)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    async with httpx.AsyncClient(timeout=600) as client:
        # Warm-up: vLLM's first requests compile and fill caches.
        for extra in VARIANTS.values():
            await first_token_ms(client, url, key, PROMPTS[0], max_tokens, extra)
        for i in range(requests):
            prompt = PROMPTS[i % len(PROMPTS)]
            # Same prompt for every variant of round i, in a fresh random order each round, so a
            # drift of the CPU engine spreads over all variants.
            order = list(VARIANTS)
            rng.shuffle(order)
            for name in order:
                results[name].append(
                    await first_token_ms(client, url, key, prompt, max_tokens, VARIANTS[name])
                )
                await asyncio.sleep(rng.uniform(0, 0.05))
    return results


def report(results: dict) -> str:
    plain = results["plain"]
    lines = [
        "| variant | first chunk p50 ms | first text p50 ms | paired diff. to plain, first text:"
        " median [p25, p75] ms |",
        "|---|---|---|---|",
    ]
    for name, samples in results.items():
        chunk = statistics.median(s[0] for s in samples)
        text = statistics.median(s[1] for s in samples)
        if name == "plain":
            diff = "—"
        else:
            d = [s[1] - p[1] for s, p in zip(samples, plain, strict=True)]
            q = statistics.quantiles(d, n=4)
            diff = f"{statistics.median(d):+.2f} [{q[0]:+.2f}, {q[2]:+.2f}]"
        lines.append(f"| {name} | {chunk:.2f} | {text:.2f} | {diff} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=60, help="requests per variant")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vllm", help="URL of a running vLLM (default: start `deepguard serve`)")
    p.add_argument("--vllm-key", default="EMPTY")
    args = p.parse_args(argv)
    server = None
    url, key = args.vllm, args.vllm_key
    if not url:
        server, url, key = start_stack(Path(tempfile.mkdtemp(prefix="vllm-fields-")))
    try:
        results = asyncio.run(run(url, key, args.requests, args.max_tokens, args.seed))
    finally:
        if server is not None:
            server.stop()
    print(f"{args.requests} one-stream requests per variant, {args.max_tokens} tokens, greedy:")
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
