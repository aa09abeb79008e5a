"""A scripted upstream that speaks the vLLM chat-completions protocol, for tests and benchmarks.

It stands in for vLLM where the real thing cannot run (no GPU here): same routes, same SSE framing,
same vLLM extensions (`return_token_ids`, `return_prompt_text`), and it records every body it gets
so tests can assert on what reached the upstream.

Scripts: POST /_scripts {"name": {...}} registers answers; a request whose last message content is
`script:<name>` (or contains it) gets that answer. A script holds
    pieces: list[str]              one streamed chunk per piece (one token each unless token_ids say otherwise)
    token_ids: list[list[int]]     optional, the ids each piece adds
    finish_reason: "stop" | "length" (default "stop")
    prompt_text: str               optional, overrides the rendered prompt
    delay_s: float                 pause before each piece (to test timing and cancellation)
    fault: null | "hang" | "close_mid_stream" | "malformed_json" | "status"   (status: answer `status` with `body`)
    marker_ids: {marker: id}       optional: prompt_token_ids as a tokenizer with these special
                                   tokens would give (each marker one id, other text 1000+)
    extra_prompt_ids: list[int]    optional: ids appended to prompt_token_ids (a forged marker)
    deltas: list[dict]             optional: raw deltas streamed after `pieces` (reasoning,
                                   tool calls, refusal fields)
    status: int, body: str         for fault "status"
Without a script the answer is `--pieces` copies of " tok" (fast path for benchmarks).

Control routes: GET /_requests (bodies received), GET /_request_headers, DELETE /_requests, GET /_stats
(streams started / completed / cancelled / active).

Run: python -m tests.support.stub_upstream --port 8101 [--model-name stub-model] [--pieces 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# One rendering of SmolLM2's ChatML for both stand-ins (this stub and the benchmark's fast one).
from bench.proxy_bench_upstream import render_chatml  # noqa: E402

_EMBEDDED = re.compile(r"script:([\w.-]+)")


class StubState:
    def __init__(self, model_name: str, default_pieces: int) -> None:
        self.model_name = model_name
        self.default_pieces = default_pieces
        self.scripts: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.record = True
        self.stats = {"started": 0, "completed": 0, "cancelled": 0, "active": 0}


def _script_for(state: StubState, body: dict) -> dict:
    messages = body.get("messages") or []
    last = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    if isinstance(last, str) and last.startswith("script:"):
        name = last[len("script:") :].strip()
        if name in state.scripts:
            return state.scripts[name]
    # Also a `script:<name>` inside the message (e.g. a prompt quoted in a judge's request).
    for name in _EMBEDDED.findall(last) if isinstance(last, str) else ():
        if name in state.scripts:
            return state.scripts[name]
    return {"pieces": [" tok"] * state.default_pieces}


def marker_token_ids(text: str, marker_ids: dict[str, int]) -> list[int]:
    """Prompt ids as a tokenizer with these special tokens would give: one id per marker,
    about one id per four characters of other text."""
    pattern = re.compile("|".join(re.escape(m) for m in sorted(marker_ids, key=len, reverse=True)))
    ids, at = [], 0
    for match in pattern.finditer(text):
        ids += (
            [1000 + i for i in range(max(1, (match.start() - at) // 4))]
            if match.start() > at
            else []
        )
        ids.append(marker_ids[match.group()])
        at = match.end()
    if at < len(text):
        ids += [1000 + i for i in range(max(1, (len(text) - at) // 4))]
    return ids


def build_app(state: StubState) -> Starlette:
    async def completions(request: Request) -> Response:
        return await chat(request, text_mode=True)

    async def chat(request: Request, text_mode: bool = False) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse(
                {
                    "object": "error",
                    "message": "bad json",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                },
                status_code=400,
            )
        if state.record:
            state.requests.append(body)
            state.headers.append(
                {k: v for k, v in request.headers.items() if k in ("x-request-id", "authorization")}
            )
        if text_mode:  # /v1/completions: select scripts by the prompt
            body = {**body, "messages": [{"role": "user", "content": body.get("prompt")}]}
        script = _script_for(state, body)
        fault = script.get("fault")
        if fault == "status":
            return Response(
                script.get("body", ""),
                status_code=script.get("status", 500),
                media_type=script.get("media_type", "application/json"),
            )
        if fault == "hang":  # never answer, but notice when the caller gives up
            while not await request.is_disconnected():
                await asyncio.sleep(0.1)
            return Response(status_code=499)
        pieces: list[str] = script["pieces"]
        ids = script.get("token_ids") or [[1000 + i] for i in range(len(pieces))]
        finish = script.get("finish_reason", "stop")
        delay = float(script.get("delay_s", 0))
        created = int(time.time())
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        prompt_text = script.get("prompt_text") or render_chatml(body.get("messages") or [])
        prompt_ids = (
            marker_token_ids(prompt_text, script["marker_ids"])
            if script.get("marker_ids")
            else list(range(len(prompt_text) // 4))
        )
        prompt_ids += script.get("extra_prompt_ids") or []
        want_ids = bool(body.get("return_token_ids"))
        want_prompt = bool(body.get("return_prompt_text"))
        completion_tokens = sum(len(x) for x in ids)
        usage = {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": completion_tokens,
            "total_tokens": len(prompt_ids) + completion_tokens,
        }

        if not body.get("stream"):
            if delay:
                await asyncio.sleep(delay * len(pieces))
            message = (
                {"text": "".join(pieces)}
                if text_mode
                else {"message": {"role": "assistant", "content": "".join(pieces)}}
            )
            out = {
                "id": rid,
                "object": "text_completion" if text_mode else "chat.completion",
                "created": created,
                "model": state.model_name,
                "choices": [{"index": 0, **message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            }
            if want_ids:
                out["prompt_token_ids"] = prompt_ids
                out["choices"][0]["token_ids"] = [t for x in ids for t in x]
            if want_prompt:
                out["prompt_text"] = prompt_text
            if fault == "malformed_json":
                return Response(b'{"id": "x", "choices": [', media_type="application/json")
            return JSONResponse(out)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish_reason=None, extra=None, choice_extra=None) -> bytes:
            if text_mode:
                choice = {
                    "index": 0,
                    "text": delta.get("content", ""),
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    **(choice_extra or {}),
                }
            else:
                choice = {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    **(choice_extra or {}),
                }
            c = {
                "id": rid,
                "object": "text_completion" if text_mode else "chat.completion.chunk",
                "created": created,
                "model": state.model_name,
                "choices": [choice],
            }
            if extra:
                c.update(extra)
            return b"data: " + json.dumps(c).encode() + b"\n\n"

        async def events():
            state.stats["started"] += 1
            state.stats["active"] += 1
            finished = False
            try:
                first_extra = {}
                if want_ids:
                    first_extra["prompt_token_ids"] = prompt_ids
                if want_prompt:
                    first_extra["prompt_text"] = prompt_text
                yield b": keep-alive\n\n"
                yield chunk({"role": "assistant", "content": ""}, extra=first_extra)
                for i, piece in enumerate(pieces):
                    if delay:
                        await asyncio.sleep(delay)
                    if fault == "close_mid_stream" and i == len(pieces) // 2:
                        finished = True
                        raise ConnectionAbortedError("scripted close")
                    if fault == "malformed_json" and i == len(pieces) // 2:
                        yield b"data: {not json\n\n"
                        continue
                    yield chunk(
                        {"content": piece}, choice_extra={"token_ids": ids[i]} if want_ids else None
                    )
                for j, delta in enumerate(script.get("deltas") or ()):
                    yield chunk(delta, choice_extra={"token_ids": [2000 + j]} if want_ids else None)
                yield chunk({}, finish_reason=finish)
                if include_usage:
                    u = {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": state.model_name,
                        "choices": [],
                        "usage": usage,
                    }
                    yield b"data: " + json.dumps(u).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
                finished = True
            finally:
                state.stats["active"] -= 1
                state.stats["completed" if finished else "cancelled"] += 1

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": state.model_name, "object": "model", "created": 0, "owned_by": "stub"}
                ],
            }
        )

    async def health(request: Request) -> Response:
        return Response(status_code=200)

    async def add_scripts(request: Request) -> Response:
        state.scripts.update(await request.json())
        return JSONResponse({"ok": True, "scripts": sorted(state.scripts)})

    async def get_requests(request: Request) -> Response:
        if request.method == "DELETE":
            state.requests.clear()
            state.headers.clear()
            return JSONResponse({"ok": True})
        return JSONResponse(state.requests)

    async def get_headers(request: Request) -> Response:
        return JSONResponse(state.headers)

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/models", models),
            Route("/health", health),
            Route("/_scripts", add_scripts, methods=["POST"]),
            Route("/_requests", get_requests, methods=["GET", "DELETE"]),
            Route("/_request_headers", get_headers),
            Route("/_stats", stats),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model-name", default="stub-model")
    p.add_argument("--pieces", type=int, default=16)
    p.add_argument(
        "--no-record", action="store_true", help="do not keep request bodies (benchmarks)"
    )
    a = p.parse_args(argv)
    state = StubState(a.model_name, a.pieces)
    state.record = not a.no_record
    uvicorn.run(build_app(state), host=a.host, port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
