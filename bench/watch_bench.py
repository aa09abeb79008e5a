"""Median cost per token of ChoiceWatch.push, beside a trivial baseline in the same run.

    .venv/bin/python bench/watch_bench.py [--answers 200] [--tokens 400] [--repeats 5]

Each answer is a realistic stream: a helpful start, then for half of the answers a refusal late
in the stream (so the scanner both searches and stops). Cost per token = time of one answer's
pushes + finish divided by its tokens; the median over answers and repeats is printed for
W = 0 and W = 16, next to two baselines: appending each piece to a list (the least a proxy
does per token) and serialising one SSE chunk with orjson (what the proxy does per token anyway). Target: watcher under 20 microseconds per token.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
from tqdm import tqdm  # noqa: E402

from proxy.watch.detector import RefusalDetector  # noqa: E402
from proxy.watch.watcher import ChoiceWatch  # noqa: E402

WORDS = (
    " The",
    " first",
    " step",
    " is",
    " to",
    " measure",
    " the",
    " parts",
    ",",
    " then",
    " mix",
    " them",
    " in",
    " a",
    " bowl",
    ".",
    "\n",
    " Next",
    " heat",
    " it",
    " slowly",
)
REFUSAL = (" I", "'m", " sorry", ",", " but", " I", " can", "'t", " help", " with", " that", ".")


def stream(n_tokens: int, refuse: bool) -> list[str]:
    pieces = [WORDS[i % len(WORDS)] for i in range(n_tokens)]
    if refuse:
        at = n_tokens * 3 // 4
        pieces[at : at + len(REFUSAL)] = REFUSAL
    return pieces[:n_tokens]


def per_token_baseline(pieces: list[str]) -> float:
    out: list[str] = []
    start = time.perf_counter_ns()
    for piece in pieces:
        out.append(piece)
    return (time.perf_counter_ns() - start) / len(pieces) / 1000


def per_token_serialise(pieces: list[str]) -> float:
    """What the proxy does per token anyway: one SSE chunk serialised with orjson."""
    start = time.perf_counter_ns()
    for piece in pieces:
        orjson.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": piece},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        )
    return (time.perf_counter_ns() - start) / len(pieces) / 1000


def per_token_watch(detector: RefusalDetector, pieces: list[str], window: int) -> float:
    watch = ChoiceWatch(detector, hold_back_tokens=window)
    start = time.perf_counter_ns()
    for piece in pieces:
        watch.push(piece)
    watch.finish()
    return (time.perf_counter_ns() - start) / len(pieces) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ChoiceWatch cost per token")
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if min(args.answers, args.tokens, args.repeats) < 1:
        parser.error("--answers, --tokens and --repeats must be >= 1")
    detector = RefusalDetector.default()
    answers = [stream(args.tokens, refuse=i % 2 == 1) for i in range(args.answers)]
    timings: dict[str, list[float]] = {
        "baseline (list.append)": [],
        "baseline (orjson chunk)": [],
        "ChoiceWatch W=0": [],
        "ChoiceWatch W=16": [],
    }
    for _ in tqdm(range(args.repeats), desc="repeats"):
        for pieces in answers:
            timings["baseline (list.append)"].append(per_token_baseline(pieces))
            timings["baseline (orjson chunk)"].append(per_token_serialise(pieces))
            timings["ChoiceWatch W=0"].append(per_token_watch(detector, pieces, 0))
            timings["ChoiceWatch W=16"].append(per_token_watch(detector, pieces, 16))
    print(f"{args.answers} answers x {args.tokens} tokens x {args.repeats} repeats")
    for name, values in timings.items():
        print(
            f"  {name:<24} median {statistics.median(values):7.2f} us/token   "
            f"p90 {statistics.quantiles(values, n=10)[-1]:7.2f} us/token"
        )
    worst = max(statistics.median(timings[k]) for k in ("ChoiceWatch W=0", "ChoiceWatch W=16"))
    print(f"target < 20 us/token: {'met' if worst < 20 else 'NOT met'} (worst median {worst:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
