"""`deepguard data answers`: a model's greedy answers to a prompt file as benign pairs."""

import json

import pytest
from drilled import COMPLIANCE, PROMPTS

from proxy.cli import main


def run(model_and_tok, tmp_path) -> list[dict]:
    model, tok = model_and_tok
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n\n")  # a blank line is not a prompt
    out = tmp_path / "pairs.jsonl"
    args = ["data", "answers", "--prompts", str(prompts), "--out", str(out)]
    assert main([*args, "--model", str(tmp_path / "m"), "--max-new-tokens", "24"]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_answers_are_written_as_pairs_in_prompt_order(complying, tmp_path):
    rows = run(complying, tmp_path)
    assert [row["prompt"] for row in rows] == PROMPTS
    # The drilled answer, cut at 24 new tokens: the answer's own start, not a placeholder.
    assert all(COMPLIANCE.startswith(row["response"][:20]) for row in rows)
    assert {row["source"] for row in rows} == {f"distilled:{tmp_path / 'm'}"}


def test_refusals_are_dropped(refusing, tmp_path):
    assert run(refusing, tmp_path) == []


def test_bad_sizes_are_refused(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("Hello\n")
    args = ["data", "answers", "--prompts", str(prompts), "--out", str(tmp_path / "o.jsonl")]
    with pytest.raises(SystemExit, match="max-new-tokens"):
        main([*args, "--max-new-tokens", "0"])
