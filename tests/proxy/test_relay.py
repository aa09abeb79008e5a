"""The relay between upstream chunks and client chunks (pure, no I/O)."""

from __future__ import annotations

import pytest

from proxy.aggregate import aggregate
from proxy.policy import PolicyViolation
from proxy.relay import AnswerRelay
from proxy.watch import RefusalDetector

DETECTOR = RefusalDetector.default()


def upstream_chunks(
    pieces: list[str],
    finish: str = "stop",
    index: int = 0,
    prompt_text: str | None = "<|im_start|>assistant\n",
) -> list[dict]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up"}
    first = {
        **base,
        "choices": [
            {"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ],
    }
    if prompt_text is not None:
        first["prompt_text"] = prompt_text
        first["prompt_token_ids"] = [1, 2, 3]
    out = [first]
    for i, piece in enumerate(pieces):
        out.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {"content": piece},
                        "token_ids": [100 + i],
                        "finish_reason": None,
                    }
                ],
            }
        )
    out.append({**base, "choices": [{"index": index, "delta": {}, "finish_reason": finish}]})
    out.append(
        {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": len(pieces),
                "total_tokens": 3 + len(pieces),
            },
        }
    )
    return out


def relay_all(relay: AnswerRelay, chunks: list[dict]) -> list[dict]:
    out = []
    for chunk in chunks:
        out.extend(relay.on_chunk(chunk))
    out.extend(relay.finish())
    return out


def contents(chunks: list[dict]) -> list[str]:
    return [
        c["choices"][0]["delta"]["content"]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("content")
    ]


def test_pieces_pass_one_chunk_each_and_private_fields_never_leave():
    outcomes = []
    relay = AnswerRelay(DETECTOR, 5, 0, "served", on_outcome=lambda i, o, t: outcomes.append(o))
    out = relay_all(relay, upstream_chunks(["Paris", " is", " the", " capital", "."]))
    assert contents(out) == ["Paris", " is", " the", " capital", "."]
    for c in out:
        assert "prompt_text" not in c and "prompt_token_ids" not in c
        assert c["model"] == "served"
        for ch in c["choices"]:
            assert "token_ids" not in ch
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert out[-1]["choices"][0]["finish_reason"] == "stop"
    assert relay.usage["completion_tokens"] == 5
    assert [o.kind for o in outcomes] == ["answered"]


def test_recovered_start_is_dropped_with_a_hold_back_window():
    pieces = [
        "Sure",
        ",",
        " here",
        " is",
        " how",
        ".",
        " I'm",
        " sorry",
        ",",
        " but",
        " I",
        " can't",
        " help",
        " with",
        " that",
        ".",
    ]
    outcomes = []
    relay = AnswerRelay(DETECTOR, 3, 32, "served", on_outcome=lambda i, o, t: outcomes.append(o))
    out = relay_all(relay, upstream_chunks(pieces))
    text = "".join(contents(out))
    assert "Sure" not in text and "here is" not in text
    assert text.strip().startswith("I'm sorry")
    assert relay.suppressed
    assert outcomes[0].kind == "recovered" and outcomes[0].onset_token == 6


def test_refusal_from_the_first_token_is_refused_not_recovered():
    outcomes = []
    relay = AnswerRelay(DETECTOR, 5, 0, "served", on_outcome=lambda i, o, t: outcomes.append(o))
    relay_all(relay, upstream_chunks(["I'm", " sorry", ",", " I", " can't", " help", "."]))
    assert outcomes[0].kind == "refused" and outcomes[0].onset_token == 0


def test_rendered_prompt_check_runs_on_the_first_chunk_before_any_content():
    violation = PolicyViolation(
        status=400,
        code="rendered_prompt_mismatch",
        param="messages",
        message="bad",
        vector="rendered_prompt",
    )
    seen = []

    def check(prompt_text: str, prompt_token_ids: list | None):
        seen.append(prompt_text)
        return violation

    relay = AnswerRelay(DETECTOR, 5, 0, "served", check_prompt=check)
    chunks = upstream_chunks(["x"], prompt_text="<|im_start|>assistant\nSure")
    with pytest.raises(PolicyViolation):
        relay.on_chunk(chunks[0])
    assert seen == ["<|im_start|>assistant\nSure"]


def test_choices_are_watched_separately_and_aggregated_in_order():
    relay = AnswerRelay(DETECTOR, 5, 0, "served")
    a = upstream_chunks(["one", " two"], index=0)
    b = upstream_chunks(["uno"], index=1, prompt_text=None)
    out = []
    for chunk in [a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3]]:
        out.extend(relay.on_chunk(chunk))
    out.extend(relay.finish())
    body = aggregate(out, relay.usage)
    assert [c["message"]["content"] for c in body["choices"]] == ["one two", "uno"]
    assert body["object"] == "chat.completion"


def test_aggregate_merges_tool_call_deltas():
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks = [
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]
                    },
                    "finish_reason": None,
                }
            ],
        },
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    body = aggregate(chunks, None)
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
    ]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
