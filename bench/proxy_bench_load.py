"""The proxy benchmark's load generator: its own process, raw keep-alive HTTP/1.1 on uvloop.

httpx or the openai client would spend more CPU per request than the proxy under test, and on a
2-core machine the load generator competes with it; so each simulated client is an asyncio
protocol that writes one pre-serialised request and parses the answer with httptools (C). It
timestamps the first body byte that carries answer text (time to first token), the last byte, and
counts SSE events, then reports raw samples and its own CPU time as JSON (stdout or --out) so the
caller can check it was not the bottleneck.

Run: python bench/proxy_bench_load.py --url http://127.0.0.1:8000/v1/chat/completions \
        --model stub-model [--stream] --concurrency 64 (--requests N | --duration S)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httptools
import orjson
import uvloop

# A content delta with at least one character: the first one marks the first token. The role
# chunk's empty content ("content":"") does not match.
CONTENT = re.compile(rb'"content":\s*"[^"]')
REQUEST_TIMEOUT_S = 30.0


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def build_request(url: str, model: str, stream: bool, max_tokens: int, api_key: str) -> bytes:
    parts = urlsplit(url)
    body = orjson.dumps(
        {
            "model": model,
            "stream": stream,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        }
    )
    return (
        f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
        f"content-type: application/json\r\nauthorization: Bearer {api_key}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


class Exchange(asyncio.Protocol):
    """One client connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.lost = False
        self._reset()

    def _reset(self) -> None:
        self.started = 0.0
        self.first_content: float | None = None
        self.content_events = 0
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed mid-answer"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        window = self.tail + body
        found = len(CONTENT.findall(window)) - len(CONTENT.findall(self.tail))
        if found > 0:
            if self.first_content is None:
                self.first_content = time.perf_counter()
            self.content_events += found
        self.tail = body[-24:]

    def on_message_complete(self) -> None:
        end = time.perf_counter()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), end))

    async def send(self, request: bytes) -> tuple[int, float, float | None, int]:
        """(status, latency, time to first content or None, time per chunk after the first)."""
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.started = time.perf_counter()
        self.transport.write(request)
        status, end = await asyncio.wait_for(self.waiter, REQUEST_TIMEOUT_S)
        ttft = None if self.first_content is None else self.first_content - self.started
        per_chunk = None
        if self.first_content is not None and self.content_events > 1:
            per_chunk = (end - self.first_content) / (self.content_events - 1)
        return status, end - self.started, ttft, per_chunk


class Results:
    def __init__(self) -> None:
        self.latency: list[float] = []
        self.ttft: list[float] = []
        self.per_chunk: list[float] = []
        self.errors: dict[str, int] = {}
        self.ok = 0  # answered 200 inside the measured window
        self.sent = 0  # every request written, warm-up and drain included
        self.completed = 0  # every 200 answer, warm-up and drain included
        self.statuses: dict[str, int] = {}  # every answer's status, warm-up and drain included

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def run(args: argparse.Namespace) -> dict:
    parts = urlsplit(args.url)
    host, port = parts.hostname, parts.port or 80
    request = build_request(args.url, args.model, args.stream, args.max_tokens, args.api_key)
    loop = asyncio.get_running_loop()
    results = Results()
    budget = [args.requests or 0]
    t_begin = time.perf_counter()
    window_start = t_begin + args.warmup
    window_end = window_start + (args.duration or 0)

    def may_send() -> bool:
        if args.requests:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True
        return time.perf_counter() < window_end

    async def client(i: int) -> None:
        # Staggered starts: real clients do not all arrive in the same millisecond, and a closed
        # loop keeps whatever phase it starts with (so a burst at t=0 would repeat forever).
        await asyncio.sleep(args.ramp * i / args.concurrency)
        conn: Exchange | None = None
        while may_send():
            if conn is None or conn.lost:
                try:
                    _, conn = await loop.create_connection(Exchange, host, port)
                except OSError as exc:
                    results.error(f"connect: {exc.__class__.__name__}")
                    await asyncio.sleep(0.05)
                    continue
            results.sent += 1
            try:
                status, latency, ttft, per_chunk = await conn.send(request)
            except (TimeoutError, ConnectionError, httptools.HttpParserError) as exc:
                results.error(exc.__class__.__name__)
                conn.transport.close()
                conn = None
                continue
            done_at = time.perf_counter()
            results.statuses[str(status)] = results.statuses.get(str(status), 0) + 1
            if status == 200:
                results.completed += 1
            elif args.duration and not window_start <= done_at <= window_end:
                results.error(f"HTTP {status}")  # failures count wherever they happen
            if args.duration and not window_start <= done_at <= window_end:
                continue  # warm-up or the drain after the window: not measured
            if status != 200:
                results.error(f"HTTP {status}")
                continue
            results.ok += 1
            results.latency.append(latency)
            if ttft is not None:
                results.ttft.append(ttft)
            if per_chunk is not None:
                results.per_chunk.append(per_chunk)
        if conn is not None and not conn.lost:
            conn.transport.close()

    cpu_before = cpu_seconds()
    await asyncio.gather(*(client(i) for i in range(args.concurrency)))
    wall = time.perf_counter() - t_begin
    cpu = cpu_seconds() - cpu_before
    measured_wall = args.duration if args.duration else wall
    return {
        "ok": results.ok,
        "sent": results.sent,
        "completed": results.completed,
        "statuses": results.statuses,
        "errors": results.errors,
        "wall_s": measured_wall,
        "total_wall_s": wall,
        "loadgen_cpu_s": cpu,
        "latency_s": results.latency,
        "ttft_s": results.ttft,
        "per_chunk_s": results.per_chunk,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Load generator for bench/proxy_bench.py.")
    p.add_argument("--url", required=True, help="full chat-completions URL")
    p.add_argument("--model", default="stub-model")
    p.add_argument("--api-key", default="sk-bench-0000000000", help="sent as a Bearer token")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=1)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--requests", type=int, help="send this many requests in total")
    mode.add_argument("--duration", type=float, help="measure this many seconds of steady load")
    p.add_argument(
        "--out",
        help="write the JSON report here instead of stdout (large reports "
        "through a pipe were cut short)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="with --duration: seconds of load before measuring starts",
    )
    p.add_argument(
        "--ramp",
        type=float,
        default=0.0,
        help="spread the connections' first requests over this many seconds",
    )
    a = p.parse_args(argv)
    if (
        a.concurrency < 1
        or (a.requests is not None and a.requests < 1)
        or (a.duration is not None and a.duration <= 0)
        or a.ramp < 0
    ):
        p.error("--concurrency, --requests and --duration must be positive, --ramp not negative")
    report = orjson.dumps(uvloop.run(run(a)))
    if a.out:
        Path(a.out).write_bytes(report)
    else:
        os.set_blocking(sys.stdout.fileno(), True)  # the event loop may have left it non-blocking
        sys.stdout.buffer.write(report)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
