"""Token-by-token generation: greedy equals transformers' generate, seeds, top-p, stop strings,
incremental detokenisation, cancellation."""

from __future__ import annotations

import threading

import torch

from proxy.engine.detokenize import IncrementalDetokenizer
from proxy.engine.generation import GenerationRequest, end_of_turn_ids, generate_tokens
from proxy.engine.lean_decoder import LeanDecoder
from proxy.engine.sampling import SamplingParams, make_generator, sample_next

GREEDY = SamplingParams(temperature=0.0)


def prompt_ids(tokenizer, text="Hello world") -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                         add_generation_prompt=True)["input_ids"]


def run(tiny, sampling=GREEDY, max_tokens=24, stop=(), seed=None, prompt="Hello world",
        cancelled=None):
    model, tokenizer = tiny
    request = GenerationRequest(prompt_ids(tokenizer, prompt), max_tokens, sampling, stop)
    return list(generate_tokens(LeanDecoder(model, "float32"), tokenizer, request,
                                end_of_turn_ids(model, tokenizer), make_generator(seed),
                                cancelled))


def test_greedy_equals_transformers_generate(tiny):
    model, tokenizer = tiny
    ids = prompt_ids(tokenizer)
    expected = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=24,
                              do_sample=False)[0, len(ids):].tolist()
    events = run(tiny)
    assert [e.token_id for e in events] == expected
    assert "".join(e.text for e in events) == tokenizer.decode(expected, skip_special_tokens=True)
    assert events[-1].finish_reason in ("stop", "length")
    assert all(e.finish_reason is None for e in events[:-1])


def test_max_tokens_ends_with_length(tiny):
    events = run(tiny, max_tokens=3, prompt="The quick brown fox")
    if len(events) == 3:
        assert events[-1].finish_reason == "length"
    else:
        assert events[-1].finish_reason == "stop"


def test_same_seed_same_output_and_different_seeds_differ(tiny):
    sampled = SamplingParams(temperature=1.0, seed=7)
    first = [e.token_id for e in run(tiny, sampled, seed=7)]
    again = [e.token_id for e in run(tiny, sampled, seed=7)]
    others = {tuple(e.token_id for e in run(tiny, sampled, seed=s)) for s in range(1, 6)}
    assert first == again
    assert len(others | {tuple(first)}) > 1


def test_top_p_keeps_only_the_nucleus():
    logits = torch.tensor([5.0, 4.9, 0.0, -1.0])
    params = SamplingParams(temperature=1.0, top_p=0.5)
    generator = make_generator(0)
    picks = {sample_next(logits, params, generator) for _ in range(50)}
    assert picks == {0}
    wide = {sample_next(logits, SamplingParams(temperature=1.0, top_p=0.99), generator)
            for _ in range(200)}
    assert {0, 1} <= wide


def test_stop_string_is_cut_and_never_streamed(tiny):
    full = "".join(e.text for e in run(tiny, max_tokens=40))
    assert len(full) > 8, "the tiny model should produce some text"
    stop = full[4:7]
    events = run(tiny, max_tokens=40, stop=(stop,))
    text = "".join(e.text for e in events)
    assert text == full[: full.index(stop)]
    assert events[-1].finish_reason == "stop"
    assert stop not in text


def test_stop_string_split_across_tokens_is_held_back(tiny):
    _, tokenizer = tiny
    ids = tokenizer.encode("abc STOP def")
    detok = IncrementalDetokenizer(tokenizer, [], stop=("STOP",))
    pieces = [detok.add(i) for i in ids] + [detok.finish()]
    assert "".join(pieces) == "abc "
    assert detok.stopped


def test_multibyte_characters_never_stream_replacement_chars(tiny):
    _, tokenizer = tiny
    text = "héllo 😀 wörld ✓"
    ids = tokenizer.encode(text)
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids), "test needs split characters"
    detok = IncrementalDetokenizer(tokenizer, prompt_ids(tokenizer))
    pieces = [detok.add(i) for i in ids]
    pieces.append(detok.finish())
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == text


def test_cancellation_stops_between_tokens(tiny):
    cancelled = threading.Event()
    model, tokenizer = tiny
    request = GenerationRequest(prompt_ids(tokenizer), 200, SamplingParams(temperature=1.0), ())
    seen = 0
    for _ in generate_tokens(LeanDecoder(model, "float32"), tokenizer, request,
                             frozenset(), make_generator(1), cancelled):
        seen += 1
        if seen == 3:
            cancelled.set()
    assert seen == 3
