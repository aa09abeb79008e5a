"""Token-by-token generation over a decoder (`LeanDecoder` or `HFDecoder`).

`generate_tokens` yields one `TokenEvent` per generated token, as soon as it is sampled, so the
server can stream it before the next forward pass starts. A `threading.Event` cancels it between
two tokens (the HTTP client went away).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from proxy.engine.detokenize import IncrementalDetokenizer
from proxy.engine.sampling import SamplingParams, sample_next


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: list[int]
    max_tokens: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("the prompt is empty")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")


@dataclass(frozen=True)
class TokenEvent:
    token_id: int
    text: str  # text that became final with this token ("" while held back)
    finish_reason: str | None = None  # "stop" (end of turn or stop string), "length", or None


def end_of_turn_ids(model, tokenizer) -> frozenset[int]:
    """Token ids that end an answer: the generation config's eos ids plus the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def generate_tokens(decoder, tokenizer, request: GenerationRequest, stop_ids: frozenset[int],
                    generator: torch.Generator,
                    cancelled: threading.Event | None = None) -> Iterator[TokenEvent]:
    """Yield one event per generated token; the last event carries the finish reason.

    Stops early, without a final event, once `cancelled` is set. The end-of-turn token is
    yielded (as vLLM's token_ids include it) but adds no text.
    """
    detokenizer = IncrementalDetokenizer(tokenizer, request.prompt_ids, request.stop)
    logits = decoder.prefill(request.prompt_ids)
    for index in range(request.max_tokens):
        if cancelled is not None and cancelled.is_set():
            return
        token = sample_next(logits, request.sampling, generator)
        if token in stop_ids:
            yield TokenEvent(token, detokenizer.finish(), "stop")
            return
        text = detokenizer.add(token)
        if detokenizer.stopped:
            yield TokenEvent(token, text, "stop")
            return
        if index == request.max_tokens - 1:
            yield TokenEvent(token, text + detokenizer.finish(), "length")
            return
        yield TokenEvent(token, text)
        logits = decoder.step(token)
