"""The watch reads everything the model writes (issue 14, item 4) and the rendered check fails
closed (item 6): each test fails on the v1 relay."""

from __future__ import annotations

import pytest

from proxy.aggregate import aggregate
from proxy.policy import PolicyViolation
from proxy.relay import AnswerRelay
from proxy.watch import RefusalDetector

DETECTOR = RefusalDetector.default()
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up"}
HARMFUL = ["Sure", ",", " here", " is", " how", ".", " Step", " one", ":"]
REFUSAL = [" I'm", " sorry", ",", " but", " I", " can't", " help", " with", " that", "."]


def first_chunk() -> dict:
    return {
        **BASE,
        "prompt_text": "<|im_start|>assistant\n",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ],
    }


def delta_chunks(key: str, pieces: list[str], logprobs: bool = False) -> list[dict]:
    out = []
    for i, piece in enumerate(pieces):
        choice = {"index": 0, "delta": {key: piece}, "token_ids": [100 + i], "finish_reason": None}
        if logprobs:
            choice["logprobs"] = {"content": [{"token": piece, "logprob": -0.1 * i}]}
        out.append({**BASE, "choices": [choice]})
    return out


def end_chunk() -> dict:
    return {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def run(relay: AnswerRelay, chunks: list[dict]) -> list[dict]:
    out = []
    for chunk in chunks:
        out.extend(relay.on_chunk(chunk))
    return out + relay.finish()


def field_text(chunks: list[dict], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning", "refusal"])
def test_a_recovery_in_any_text_field_is_seen_and_its_start_held_back(key):
    outcomes = []
    relay = AnswerRelay(DETECTOR, 3, 32, "served", on_outcome=lambda i, o, t: outcomes.append(o))
    out = run(relay, [first_chunk(), *delta_chunks(key, HARMFUL + REFUSAL), end_chunk()])
    text = field_text(out, key)
    assert "Sure" not in text and "Step one" not in text
    assert text.strip().startswith("I'm sorry")
    assert outcomes[0].kind == "recovered" and relay.suppressed


def tool_chunks(arguments: list[str]) -> list[dict]:
    out = [
        {
            **BASE,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "answer", "arguments": ""},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        }
    ]
    for piece in arguments:
        out.append(
            {
                **BASE,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
                        "finish_reason": None,
                    }
                ],
            }
        )
    return out


def test_a_refusal_inside_tool_call_arguments_is_seen():
    outcomes = []
    relay = AnswerRelay(DETECTOR, 3, 0, "served", on_outcome=lambda i, o, t: outcomes.append(o))
    pieces = [
        '{"text": "',
        "I'm",
        " sorry",
        ",",
        " but",
        " I",
        " can't",
        " help",
        " with",
        " that",
        '"}',
    ]
    out = run(relay, [first_chunk(), *tool_chunks(pieces), end_chunk()])
    assert outcomes[0].kind == "refused"
    body = aggregate(out, None)
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "answer", "arguments": "".join(pieces)}
    assert call["id"] == "call_1"


def test_a_refusal_inside_a_json_string_counts_in_json_mode():
    pieces = [
        '{"answer": "',
        "I'm",
        " sorry",
        ",",
        " but",
        " I",
        " can't",
        " help",
        " with",
        " that",
        '."}',
    ]
    outcomes = []
    relay = AnswerRelay(
        DETECTOR, 3, 0, "served", json_answer=True, on_outcome=lambda i, o, t: outcomes.append(o)
    )
    run(relay, [first_chunk(), *delta_chunks("content", pieces), end_chunk()])
    assert outcomes[0].kind == "refused"
    # Outside JSON mode the same quoted text reads as a quotation, not a refusal.
    outcomes.clear()
    relay = AnswerRelay(DETECTOR, 3, 0, "served", on_outcome=lambda i, o, t: outcomes.append(o))
    run(relay, [first_chunk(), *delta_chunks("content", pieces), end_chunk()])
    assert outcomes[0].kind == "answered"


def test_a_stray_backtick_does_not_hide_a_later_refusal():
    pieces = [
        "Use",
        " `",
        "rm",
        " -rf",
        "\n",
        "I'm",
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
    assert DETECTOR.find_onset("".join(pieces)) == "".join(pieces).index("I'm")


def test_unknown_delta_fields_never_reach_the_client():
    relay = AnswerRelay(DETECTOR, 3, 8, "served")
    chunk = {
        **BASE,
        "choices": [
            {"index": 0, "delta": {"content": "Hi", "new_text_field": "x"}, "finish_reason": None}
        ],
    }
    out = run(relay, [first_chunk(), chunk, end_chunk()])
    assert all("new_text_field" not in c["choices"][0]["delta"] for c in out if c["choices"])
    assert field_text(out, "content") == "Hi"


def logprob_tokens(chunks: list[dict]) -> list[tuple[str, str | None]]:
    """(content, token of its logprobs entry or None) for every content chunk."""
    pairs = []
    for c in chunks:
        choice = c["choices"][0]
        content = choice["delta"].get("content")
        if content:
            lp = choice.get("logprobs")
            pairs.append((content, lp["content"][0]["token"] if lp and lp["content"] else None))
    return pairs


def test_logprobs_stay_with_their_text_after_a_suppression():
    relay = AnswerRelay(DETECTOR, 3, 32, "served")
    out = run(
        relay,
        [first_chunk(), *delta_chunks("content", HARMFUL + REFUSAL, logprobs=True), end_chunk()],
    )
    pairs = logprob_tokens(out)
    assert pairs[0][0].strip().startswith("I'm")
    # Every released whole piece carries its own entry (v1 paired them by queue position, so
    # after the dropped start they were out of step and fell back to none at all).
    # The first piece was cut at the onset (" I'm" -> "I'm"): its token no longer matches.
    assert pairs[0] == ("I'm", None)
    assert pairs[1:] == [(content, content) for content, _ in pairs[1:]], pairs


def test_logprobs_of_the_first_tokens_are_withheld():
    relay = AnswerRelay(DETECTOR, 3, 0, "served", logprobs_withheld_tokens=3)
    pieces = ["Paris", " is", " the", " capital", "."]
    out = run(relay, [first_chunk(), *delta_chunks("content", pieces, logprobs=True), end_chunk()])
    assert logprob_tokens(out) == [
        ("Paris", None),
        (" is", None),
        (" the", None),
        (" capital", " capital"),
        (".", "."),
    ]


def test_a_first_chunk_without_the_rendered_prompt_fails_closed():
    seen = []

    def check(prompt_text, prompt_token_ids):
        seen.append(prompt_text)
        if prompt_text is None:
            return PolicyViolation("rendered_prompt_mismatch", "no prompt", None, "rendered_prompt")
        return None

    relay = AnswerRelay(DETECTOR, 3, 0, "served", check_prompt=check)
    chunk = first_chunk()
    del chunk["prompt_text"]
    with pytest.raises(PolicyViolation):
        relay.on_chunk(chunk)
    assert seen == [None]
