"""Per-send cost of the write timeout on the streamed path: `asyncio.timeout` around every ASGI
send (before) against proxy.middleware.WriteWatch (one timer per response), same run, same loop.

Run: .venv/bin/python bench/send_path_bench.py [--sends 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proxy.middleware import WriteWatch  # noqa: E402


async def noop_send(message) -> None:
    pass


async def per_send_timeout(n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        async with asyncio.timeout(30.0):
            await noop_send({})
    return time.perf_counter() - started


async def write_watch(n: int) -> float:
    started = time.perf_counter()
    watch = WriteWatch(30.0)
    for _ in range(n):
        await watch.send(noop_send, {})
    watch.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sends", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    times: dict[str, list[float]] = {"asyncio.timeout per send": [], "WriteWatch": []}
    for _ in range(args.rounds):  # interleaved, so load from other jobs hits both alike
        times["asyncio.timeout per send"].append(uvloop.run(per_send_timeout(args.sends)))
        times["WriteWatch"].append(uvloop.run(write_watch(args.sends)))
    for name, samples in times.items():
        print(f"{name}: {statistics.median(samples) / args.sends * 1e6:.2f} µs per send (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
