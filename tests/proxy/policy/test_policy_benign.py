"""Over-blocking is a bug too: the benign corpora pass with zero false rejections.

Data: XSTest safe prompts (Röttger et al., NAACL 2024, CC-BY-4.0) and Self-Instruct seed and
user-oriented tasks (Wang et al., 2023, Apache-2.0), read from ../shared/data.
"""

from __future__ import annotations

import csv
import json

import pytest

from proxy.policy import PolicyViolation, check_chat_request

from .conftest import SHARED, chat

DATA = SHARED / "data"


def xstest_prompts() -> list[str]:
    with open(DATA / "xstest" / "xstest_safe_prompts.csv", newline="", encoding="utf-8") as f:
        return [row["prompt"] for row in csv.DictReader(f)]


def self_instruct_prompts() -> list[str]:
    prompts = []
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        with open(DATA / "self-instruct" / name, encoding="utf-8") as f:
            for line in f:
                task = json.loads(line)
                for instance in task["instances"]:
                    # The instruction with its input, as an app would send it.
                    text = task["instruction"]
                    if instance.get("input"):
                        text += "\n\n" + instance["input"]
                    prompts.append(text)
    return prompts


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    if not DATA.is_dir():
        pytest.fail(f"../shared/data is missing (expected at {DATA})")
    xs, si = xstest_prompts(), self_instruct_prompts()
    assert len(xs) == 250 and len(si) >= 175 + 252
    return xs + si


def rejections(bodies, ctx) -> list[tuple[int, str]]:
    failed = []
    for index, body in enumerate(bodies):
        try:
            check_chat_request(body, ctx)
        except PolicyViolation as v:
            failed.append((index, v.message))
    return failed


def test_single_turn_prompts_pass(corpus, ctx):
    bodies = [chat({"role": "user", "content": p}) for p in corpus]
    assert rejections(bodies, ctx) == []


def test_prompts_pass_inside_multi_turn_conversations(corpus, ctx):
    bodies = []
    for i in range(0, len(corpus) - 2, 3):
        bodies.append(
            chat(
                {"role": "system", "content": "You are a careful assistant. Answer briefly."},
                {"role": "user", "content": corpus[i]},
                {"role": "assistant", "content": corpus[i + 1]},  # real-looking history
                {"role": "user", "content": [{"type": "text", "text": corpus[i + 2]}]},
                temperature=0.2,
                max_tokens=512,
                response_format={"type": "json_object"},
            )
        )
    assert len(bodies) > 200
    assert rejections(bodies, ctx) == []
