"""OpenAI/vLLM response shapes for chat completions, streamed and not.

Field names and placement follow vLLM's `ChatCompletionResponse` / `ChatCompletionStreamResponse`:
top-level `prompt_token_ids` and `prompt_text` (first chunk only when streaming), per-choice
`token_ids` (the tokens each chunk adds, end-of-turn token included).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson

from proxy.engine.protocol import ChatRequest
from proxy.engine.service import EngineService, Prompt
from proxy.errors import error_body


class _Call:
    """What every chunk of one response shares."""

    def __init__(self, service: EngineService, request: ChatRequest, prompt: Prompt) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = service.served_model_name
        self.request = request
        self.prompt = prompt

    def envelope(self, obj: str, choices: list[dict]) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "choices": choices}

    def prompt_fields(self) -> dict:
        fields: dict = {}
        if self.request.return_token_ids:
            fields["prompt_token_ids"] = self.prompt.token_ids
        if self.request.return_prompt_text:
            fields["prompt_text"] = self.prompt.text
        return fields

    def usage(self, completion_tokens: int) -> dict:
        prompt_tokens = len(self.prompt.token_ids)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}


def _sse(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def stream_chat(service: EngineService, request: ChatRequest, prompt: Prompt,
                      received_at: float) -> AsyncIterator[bytes]:
    """SSE body: a role chunk per choice, one chunk per generated token, optional usage chunk,
    then `data: [DONE]`. Closing this iterator early (client gone) cancels the generation."""
    call = _Call(service, request, prompt)
    job = service.generation_request(request, prompt)
    cancelled = threading.Event()
    for index in range(request.n):
        chunk = call.envelope("chat.completion.chunk", [{
            "index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
            "finish_reason": None}])
        if index == 0:
            chunk.update(call.prompt_fields())
        yield _sse(chunk)
    completion_tokens = 0
    try:
        async for event in service.generate(job, request.n, received_at, cancelled):
            completion_tokens += 1
            choice = {"index": event.index, "delta": {"content": event.token.text},
                      "logprobs": None, "finish_reason": event.token.finish_reason}
            if request.return_token_ids:
                choice["token_ids"] = [event.token.token_id]
            yield _sse(call.envelope("chat.completion.chunk", [choice]))
    except Exception:
        yield _sse(error_body("generation failed inside the engine", "InternalServerError",
                              None, "engine_error"))
        yield b"data: [DONE]\n\n"
        return
    finally:
        cancelled.set()
    if request.include_usage:
        chunk = call.envelope("chat.completion.chunk", [])
        chunk["usage"] = call.usage(completion_tokens)
        yield _sse(chunk)
    yield b"data: [DONE]\n\n"


async def complete_chat(service: EngineService, request: ChatRequest, prompt: Prompt,
                        received_at: float,
                        client_gone: Callable[[], Awaitable[bool]]) -> dict | None:
    """The whole `chat.completion` object, or None when the client left before the end (the
    generation is then cancelled: a watcher polls `client_gone` while tokens are produced)."""
    call = _Call(service, request, prompt)
    job = service.generation_request(request, prompt)
    cancelled = threading.Event()
    texts = [[] for _ in range(request.n)]
    token_ids = [[] for _ in range(request.n)]
    finish = [None] * request.n

    async def watch() -> None:
        while not cancelled.is_set():
            if await client_gone():
                cancelled.set()
                return
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        async for event in service.generate(job, request.n, received_at, cancelled):
            texts[event.index].append(event.token.text)
            token_ids[event.index].append(event.token.token_id)
            finish[event.index] = event.token.finish_reason
    finally:
        gone = cancelled.is_set() and any(reason is None for reason in finish)
        cancelled.set()
        watcher.cancel()
    if gone:
        return None
    choices = []
    for index in range(request.n):
        choice = {"index": index,
                  "message": {"role": "assistant", "content": "".join(texts[index])},
                  "logprobs": None, "finish_reason": finish[index]}
        if request.return_token_ids:
            choice["token_ids"] = token_ids[index]
        choices.append(choice)
    body = call.envelope("chat.completion", choices)
    body["usage"] = call.usage(sum(len(ids) for ids in token_ids))
    body.update(call.prompt_fields())
    return body
