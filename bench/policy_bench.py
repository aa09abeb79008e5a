"""Cost of the prefill policy per request, beside trivial baselines measured in the same run.

Request: a 10-turn conversation of about 2k tokens (system prompt, alternating user/assistant
history, last turn user; ~8,200 characters at ~4 characters per token), with some code holding
`<` and `[` so the control-token scan does real work, plus ordinary sampling fields and a tool.

Also the cost of verified history (policy.history: verified) for the same conversation: the
keyed digests of its 4 assistant turns, the in-process lookup, and with `--redis-url` the
lookup round trip to a real Redis (one MGET per request).

Run: nice .venv/bin/python bench/policy_bench.py [--iterations 5000] [--redis-url redis://...]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import platform
import statistics
import time

import orjson

from proxy.history import MemoryHistory, RedisHistory
from proxy.policy import (
    ControlTokenMatcher,
    PolicyContext,
    PolicySettings,
    check_chat_request,
    check_rendered_prompt,
)
from proxy.policy.history import digest, message_records, turns_to_verify

MODEL = "bench-model"
WORDS = (
    "the model answers questions about bread baking, tax forms, python processes and the "
    "history of rome while keeping every reply short and polite and checking its facts"
).split()
CODE = "if (a < b && v[i] > 0) { out[i] = <T>(x); } // see [docs](https://example.org/a?b=1) "


def prose(chars: int, seed: int) -> str:
    out, i = [], seed
    while sum(len(w) + 1 for w in out) < chars:
        out.append(WORDS[i % len(WORDS)])
        i = i * 7 + 3
    return " ".join(out)


def conversation() -> dict:
    messages = [{"role": "system", "content": prose(700, 1)}]
    for turn in range(9):
        role = "user" if turn % 2 == 0 else "assistant"
        text = prose(830, turn + 2)
        if turn == 3:
            text = CODE * 6 + text[: 830 - len(CODE) * 6]
        messages.append({"role": role, "content": text})
    return {
        "model": MODEL,
        "messages": messages,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 512,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Look a term up",
                    "parameters": {
                        "type": "object",
                        "properties": {"term": {"type": "string"}},
                        "required": ["term"],
                    },
                },
            }
        ],
        "tool_choice": "auto",
    }


def rendered(messages: list[dict]) -> str:
    return (
        "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        + "<|im_start|>assistant\n"
    )


def measure(fn, iterations: int) -> tuple[float, float]:
    for _ in range(min(200, iterations)):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        fn()
        samples.append(clock() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.9)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()

    body = conversation()
    raw = orjson.dumps(body)
    ctx = PolicyContext(PolicySettings(), ControlTokenMatcher.builtin(), MODEL)
    matcher = ctx.control_tokens
    texts = [m["content"] for m in body["messages"]]
    prompt = rendered(body["messages"])
    chars = sum(len(t) for t in texts)

    def scan_only():
        for text in texts:
            matcher.find(text)

    schema_body = {
        **body,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [f"field_{i}" for i in range(10)],
                    "properties": {
                        f"field_{i}": {
                            "type": "array",
                            "maxItems": 5,
                            "items": {"type": "string", "maxLength": 80},
                        }
                        for i in range(10)
                    },
                },
            },
        },
    }
    secret, key = b"s" * 32, "sk-bench-key"
    store = MemoryHistory(3600, 1_000_000)
    history = [m for m in body["messages"] if m["role"] == "assistant"]
    run_sync(store.add([digest(secret, key, r) for m in history for r in message_records(m)]))
    for i in range(100_000):  # a store that is not empty
        run_sync(store.add([digest(secret, f"other-{i}", b"t\0x")]))

    def verify_in_process():
        turns = turns_to_verify(body["messages"], secret, key)
        assert not run_sync(store.missing([d for _, ds in turns for d in ds]))

    rows = [
        ("baseline: dict(body) shallow copy", lambda: dict(body)),
        ("baseline: copy.deepcopy(body)", lambda: copy.deepcopy(body)),
        ("baseline: orjson.loads(raw body)", lambda: orjson.loads(raw)),
        ("check_chat_request", lambda: check_chat_request(body, ctx)),
        ("control-token scan only", scan_only),
        ("check_rendered_prompt", lambda: check_rendered_prompt(prompt, body["messages"], ctx)),
        ("check_chat_request with a json_schema", lambda: check_chat_request(schema_body, ctx)),
        (
            "history: digests of 4 assistant turns",
            lambda: turns_to_verify(body["messages"], secret, key),
        ),
        ("history: digests + in-process lookup", verify_in_process),
    ]
    print(
        f"policy bench: {len(body['messages'])} messages, {chars} characters (~{chars // 4} "
        f"tokens), {len(matcher.tokens)} control tokens, {args.iterations} iterations, "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    print(f"{'what':40s} {'median us':>10s} {'p90 us':>10s}")
    for name, fn in rows:
        median, p90 = measure(fn, args.iterations)
        print(f"{name:40s} {median:10.1f} {p90:10.1f}")
    if args.redis_url:
        median, p90 = asyncio.run(
            redis_lookup(args.redis_url, body, secret, key, min(args.iterations, 2000))
        )
        print(f"{'history: digests + Redis MGET round trip':40s} {median:10.1f} {p90:10.1f}")


def run_sync(coroutine):
    """Drive a coroutine that never suspends (the in-process store's) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


async def redis_lookup(
    url: str, body: dict, secret: bytes, key: str, iterations: int
) -> tuple[float, float]:
    store = RedisHistory(url, 3600)
    turns = turns_to_verify(body["messages"], secret, key)
    await store.add([d for _, ds in turns for d in ds])
    samples = []
    for i in range(iterations + 100):
        start = time.perf_counter_ns()
        turns = turns_to_verify(body["messages"], secret, key)
        assert not await store.missing([d for _, ds in turns for d in ds])
        if i >= 100:
            samples.append(time.perf_counter_ns() - start)
    await store.aclose()
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.9)] / 1000


if __name__ == "__main__":
    main()
