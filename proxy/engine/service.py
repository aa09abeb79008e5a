"""The engine core behind the HTTP routes: renders prompts and runs generations one at a time.

Generation runs in a single worker thread (so the event loop stays responsive and two requests
can never interleave on the decoder's KV cache); events cross back to the loop through an
asyncio queue. Requests wait for their turn on an asyncio lock (FIFO), which is what the
`waiting` gauge counts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from proxy.engine.generation import GenerationRequest, TokenEvent, end_of_turn_ids, generate_tokens
from proxy.engine.metrics import EngineMetrics
from proxy.engine.protocol import ChatRequest
from proxy.engine.sampling import SamplingParams, make_generator
from proxy.errors import bad_request

log = logging.getLogger("deepguard.engine")
_DONE = object()


@dataclass(frozen=True)
class Prompt:
    text: str
    token_ids: list[int]


@dataclass(frozen=True)
class ChoiceEvent:
    index: int  # which of the n choices
    token: TokenEvent


class EngineService:
    def __init__(self, model, tokenizer, decoder, served_model_name: str,
                 metrics: EngineMetrics | None = None) -> None:
        self.tokenizer = tokenizer
        self.decoder = decoder
        self.served_model_name = served_model_name
        self.metrics = metrics or EngineMetrics(served_model_name)
        self.stop_ids = end_of_turn_ids(model, tokenizer)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-generate")
        self._turn: asyncio.Lock | None = None  # created on the serving loop

    # -- prompt ------------------------------------------------------------------------------
    def render_prompt(self, request: ChatRequest) -> Prompt:
        """Apply the model's own chat template, exactly as vLLM does (text, then tokens)."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise bad_request("the model has no chat template", param="messages")
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=request.generation_prompt,
                continue_final_message=request.continue_final_message,
                **(request.chat_template_kwargs or {}))
        except Exception as exc:  # template errors are the caller's input, not our bug
            raise bad_request(f"the chat template rejected the messages: {exc}",
                              param="messages") from None
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise bad_request("the rendered prompt is empty", param="messages")
        if len(ids) >= self.context_length:
            raise bad_request(f"the prompt has {len(ids)} tokens; the model's context is "
                              f"{self.context_length}", param="messages")
        return Prompt(text, ids)

    def generation_request(self, request: ChatRequest, prompt: Prompt) -> GenerationRequest:
        room = self.context_length - len(prompt.token_ids)
        limit = request.token_limit
        if limit is not None and limit > room:
            raise bad_request(f"max_tokens={limit} does not fit: the prompt has "
                              f"{len(prompt.token_ids)} tokens of the model's "
                              f"{self.context_length}", param="max_tokens")
        sampling = SamplingParams(request.temperature, request.top_p, request.seed)
        return GenerationRequest(prompt.token_ids, limit or room, sampling, request.stop_strings)

    # -- generation --------------------------------------------------------------------------
    async def generate(self, job: GenerationRequest, n: int, received_at: float,
                       cancelled: threading.Event) -> AsyncIterator[ChoiceEvent]:
        """Yield the events of `n` choices, one after the other. Leaving the iteration early
        (client gone) sets `cancelled`, which stops the worker before its next token."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        self.metrics.waiting.inc()
        waiting = True
        try:
            async with self._turn:
                self.metrics.waiting.dec()
                waiting = False
                if cancelled.is_set():  # the client left while queued
                    self.metrics.request_ended("cancelled")
                    return
                self.metrics.running.inc()
                try:
                    loop.run_in_executor(self._executor, self._work, job, n, received_at,
                                         cancelled, loop, queue)
                    while (item := await queue.get()) is not _DONE:
                        if isinstance(item, BaseException):
                            raise item
                        yield item
                finally:
                    cancelled.set()  # no-op when finished; stops the worker otherwise
                    self.metrics.running.dec()
        finally:
            if waiting:
                self.metrics.waiting.dec()
                self.metrics.request_ended("cancelled")

    def _work(self, job: GenerationRequest, n: int, received_at: float,
              cancelled: threading.Event, loop: asyncio.AbstractEventLoop,
              queue: asyncio.Queue) -> None:
        """Runs on the worker thread. Records the outcome itself, so a cancelled request is
        counted once its generation has really stopped."""
        put = queue.put_nowait
        finished_choices = 0
        first = True
        outcome = "error"
        try:
            generator = make_generator(job.sampling.seed)
            for index in range(n):
                for token in generate_tokens(self.decoder, self.tokenizer, job, self.stop_ids,
                                             generator, cancelled):
                    if first:
                        self.metrics.ttft.observe(time.perf_counter() - received_at)
                        first = False
                    self.metrics.generated_tokens.inc()
                    loop.call_soon_threadsafe(put, ChoiceEvent(index, token))
                    if token.finish_reason is not None:
                        finished_choices += 1
                if cancelled.is_set() and finished_choices <= index:
                    break
            outcome = "finished" if finished_choices == n else "cancelled"
        except Exception as exc:
            log.exception("generation failed")
            loop.call_soon_threadsafe(put, exc)
        finally:
            self.metrics.request_ended(outcome)
            try:
                loop.call_soon_threadsafe(put, _DONE)
            except RuntimeError:  # the event loop is gone (server shutting down)
                pass

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
