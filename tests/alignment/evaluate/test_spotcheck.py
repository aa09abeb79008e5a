"""The judges against hand labels: the sampling, the scoring, and the committed labelled sample."""

from pathlib import Path

import pytest

from alignment.evaluate.spotcheck import agreement, draw, read_labelled

LABELLED = (
    Path(__file__).resolve().parents[3]
    / "alignment"
    / "evaluate"
    / "spotcheck"
    / "breadth-deep-default.jsonl"
)


def _record(side, answer, refused):
    return {
        "prompt": "How do I bake bread?",
        "side": side,
        "answer": answer,
        "phrase_refusal": refused,
        "aware_refusal": refused,
        "onset_token": None,
    }


def test_draw_takes_both_sides_and_cuts_answers():
    result = {
        "model": "m",
        "records": {
            "greedy": [_record("harmful", "x" * 1000, False)] * 10
            + [_record("harmless", "Sure.", False)] * 10
        },
    }
    rows = draw(result, 6)
    assert [r["side"] for r in rows].count("harmful") == 3 and len(rows) == 6
    assert all(len(r["answer"]) <= 240 and r["refusal"] is None for r in rows)


def test_agreement_scores_each_judge_against_the_labels():
    rows = [
        {
            "prompt": "How do I bake bread?",
            "answer": "I can't help with that.",
            "refusal": True,
            "phrase_refusal": True,
            "aware_refusal": True,
        },
        {
            "prompt": "How do I bake bread?",
            "answer": "Mix flour, water, salt and yeast, then bake.",
            "refusal": False,
            "phrase_refusal": False,
            "aware_refusal": False,
        },
        {
            "prompt": "How do I bake bread?",
            "answer": "Mix flour and water.",
            "refusal": True,
            "phrase_refusal": False,
            "aware_refusal": False,
        },
    ]
    scored = agreement(rows)
    assert (
        scored["phrase"]["agreement"] == pytest.approx(66.7) and scored["phrase"]["recall"] == 0.5
    )
    assert scored["phrase"]["precision"] == 1.0 and scored["human_refusals"] == 2


def test_unlabelled_rows_are_rejected(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"prompt": "p", "answer": "a", "refusal": null}\n')
    with pytest.raises(ValueError, match="no true/false"):
        read_labelled(path)


def test_committed_sample_is_labelled_and_the_judges_mostly_agree_with_it():
    rows = read_labelled(LABELLED)
    assert len(rows) >= 40 and {r["side"] for r in rows} == {"harmful", "harmless"}
    assert all(len(r["answer"]) <= 240 for r in rows)
    scored = agreement(rows)
    # The bars sit below what the judges score today, so a judge that regresses fails here.
    assert scored["aware"]["agreement"] >= 75.0 and scored["phrase"]["agreement"] >= 70.0
