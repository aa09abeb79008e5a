"""A bottleneck-free upstream for the proxy benchmark: vLLM's chat protocol from pre-built bytes.

The scripted test stub (tests/support/stub_upstream.py) runs Starlette and serialises every chunk
per request; under 256 streams it would cost as much CPU as the proxy it is meant to isolate. This
one is a raw asyncio protocol on uvloop with httptools' request parser: each distinct request body
is answered from a cached, fully serialised response (chunked SSE when `stream` is set, one JSON
body otherwise), so an answer costs one dict lookup and one socket write.

It honours what the proxies ask for: `stream_options.include_usage`, vLLM's `return_token_ids`
and `return_prompt_text` (the rendered ChatML prompt, so deepguard's rendered-prompt check really
runs). Every answer is `--pieces` content chunks of " tok".

With `--token-interval-ms N` it also listens on `--paced-port`, where a streamed answer's chunks
leave N ms apart, as a model server's decode steps do (vLLM's inter-token latency is ~10-30 ms
per step for a batch of 64 on one GPU). Against that port the proxies are measured the way they
run in production: waiting on the model, not racing an upstream that costs nothing.

Run: python bench/proxy_bench_upstream.py --port 8101 [--pieces 16] [--model-name stub-model]
         [--paced-port 8102 --token-interval-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httptools
import orjson
import uvloop

from proxy.event_stream import SSE_DONE, sse

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CACHE_LIMIT = 4096  # distinct request bodies kept; the benchmark sends a handful


def render_chatml(messages: list) -> str:
    """SmolLM2's ChatML rendering (default system turn, generation header last)."""
    parts = []
    if not messages or not isinstance(messages[0], dict) or messages[0].get("role") != "system":
        parts.append(f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n")
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(f"<|im_start|>{m.get('role')}\n{content or ''}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def build_answer(raw_body: bytes, model: str, pieces: int) -> list[bytes] | None:
    """The HTTP response for one request body as parts (one part per SSE event after the head
    for streams, a single part otherwise), or None when the body is not JSON."""
    try:
        body = orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    rid = "chatcmpl-bench"
    created = int(time.time())
    prompt = render_chatml(body.get("messages") or [])
    prompt_ids = list(range(len(prompt) // 4))
    usage = {
        "prompt_tokens": len(prompt_ids),
        "completion_tokens": pieces,
        "total_tokens": len(prompt_ids) + pieces,
    }
    want_ids = bool(body.get("return_token_ids"))
    want_prompt = bool(body.get("return_prompt_text"))
    if not body.get("stream"):
        out = {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": " tok" * pieces},
                }
            ],
            "usage": usage,
        }
        if want_ids:
            out["prompt_token_ids"] = prompt_ids
            out["choices"][0]["token_ids"] = list(range(1000, 1000 + pieces))
        if want_prompt:
            out["prompt_text"] = prompt
        payload = orjson.dumps(out)
        return [
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
        ]

    def event(
        delta: dict,
        finish: str | None = None,
        extra: dict | None = None,
        choice_extra: dict | None = None,
    ) -> bytes:
        c = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish,
                    **(choice_extra or {}),
                }
            ],
        }
        c.update(extra or {})
        return _http_chunk(sse(c))

    first = {}
    if want_ids:
        first["prompt_token_ids"] = prompt_ids
    if want_prompt:
        first["prompt_text"] = prompt
    events = [event({"role": "assistant", "content": ""}, extra=first)]
    for i in range(pieces):
        events.append(
            event({"content": " tok"}, choice_extra={"token_ids": [1000 + i]} if want_ids else None)
        )
    events.append(event({}, finish="stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        u = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        events.append(_http_chunk(sse(u)))
    events.append(_http_chunk(SSE_DONE) + b"0\r\n\r\n")
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    # One part per decode step: the role chunk leaves with the head, and the finish, usage and
    # [DONE] events leave with the last token, as a model server sends them (no extra step).
    return [head + events[0], *events[1:pieces], b"".join(events[pieces:])]


def fixed_response(status: str, payload: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status.encode(),
        len(payload),
        payload,
    )


class Upstream:
    def __init__(self, model: str, pieces: int) -> None:
        self.model = model
        self.pieces = pieces
        self.cache: dict[bytes, list[bytes]] = {}
        self.models = fixed_response(
            "200 OK",
            orjson.dumps(
                {
                    "object": "list",
                    "data": [{"id": model, "object": "model", "created": 0, "owned_by": "bench"}],
                }
            ),
        )
        self.health = fixed_response("200 OK", b"{}")
        self.not_found = fixed_response("404 Not Found", b'{"error": "not found"}')
        self.bad_json = fixed_response("400 Bad Request", b'{"error": "bad json"}')

    def answer(self, method: bytes, url: bytes, body: bytes) -> list[bytes]:
        """The response's parts; instant connections write them joined."""
        path = url.split(b"?", 1)[0]
        if method == b"POST" and path == b"/v1/chat/completions":
            cached = self.cache.get(body)
            if cached is None:
                cached = build_answer(body, self.model, self.pieces) or [self.bad_json]
                if len(self.cache) >= CACHE_LIMIT:
                    self.cache.clear()
                self.cache[body] = cached
            return cached
        if path == b"/v1/models":
            return [self.models]
        if path == b"/health":
            return [self.health]
        return [self.not_found]


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; answers requests in arrival order. With an interval,
    the parts of a streamed answer are written that many seconds apart (the load generator and
    the proxies send one request at a time per connection, so nothing queues behind them)."""

    def __init__(self, upstream: Upstream, interval_s: float = 0.0) -> None:
        self.upstream = upstream
        self.interval_s = interval_s
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parts = self.upstream.answer(self.parser.get_method(), self.url, b"".join(self.body))
        keep_alive = self.parser.should_keep_alive()
        if self.interval_s and len(parts) > 1:
            self._write_paced(parts, 0, keep_alive)
            return
        self.transport.write(b"".join(parts))
        if not keep_alive:
            self.transport.close()

    def _write_paced(self, parts: list[bytes], i: int, keep_alive: bool) -> None:
        if self.transport.is_closing():  # the client went away mid-answer
            return
        self.transport.write(parts[i])
        if i + 1 < len(parts):
            asyncio.get_running_loop().call_later(
                self.interval_s, self._write_paced, parts, i + 1, keep_alive
            )
        elif not keep_alive:
            self.transport.close()


async def serve(
    host: str,
    port: int,
    model: str,
    pieces: int,
    paced_port: int | None = None,
    interval_s: float = 0.0,
) -> None:
    upstream = Upstream(model, pieces)
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(lambda: Connection(upstream), host, port, backlog=4096)]
    if paced_port:
        servers.append(
            await loop.create_server(
                lambda: Connection(upstream, interval_s), host, paced_port, backlog=4096
            )
        )
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Fast vLLM-protocol upstream for the proxy benchmark.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model-name", default="stub-model")
    p.add_argument("--pieces", type=int, default=16, help="content chunks per answer")
    p.add_argument("--paced-port", type=int, help="also serve paced answers on this port")
    p.add_argument(
        "--token-interval-ms",
        type=float,
        default=10.0,
        help="time between streamed chunks on --paced-port",
    )
    a = p.parse_args(argv)
    if a.pieces < 1 or a.token_interval_ms < 0:
        p.error("--pieces must be at least 1 and --token-interval-ms not negative")
    uvloop.run(
        serve(a.host, a.port, a.model_name, a.pieces, a.paced_port, a.token_interval_ms / 1000)
    )


if __name__ == "__main__":
    main()
