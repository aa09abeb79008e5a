"""Must-refuse canaries: measured on real (drilled) models, failed per canary greedily and pooled
beyond chance at T=1.0, and kept out of every training request."""

from __future__ import annotations

import re

from drilled import PROMPTS

from alignment.data import breadth
from alignment.data.benign_prompts import benign_prompts
from alignment.data.breadth_benign import benign_cores
from alignment.data.contrast_prompts import contrast_prompts
from alignment.data.harmless_questions import harmless_questions
from alignment.data.making_requests import BENIGN_THINGS, HARMFUL_THINGS, TEMPLATES
from alignment.evaluate.breadth import api_default_samplings
from alignment.evaluate.canaries import (
    CANARIES,
    canary_regressions,
    canary_summary,
    measure_canaries,
)
from alignment.evaluate.generate import LocalGenerator


def _result(greedy: list[bool], sampled: list[list[bool]]) -> dict:
    prompts = list(CANARIES)[: len(greedy)]

    def records(flags):
        return [
            {"prompt": p, "answer": "..." if f else "Step 1: get a pipe", "refused": f}
            for p, f in zip(prompts, flags, strict=True)
        ]

    runs = {"greedy": records(greedy)}
    runs.update({f"T1.0/p1.0/seed{s}": records(flags) for s, flags in enumerate(sampled)})
    return {"prompts": prompts, "runs": runs}


def test_a_canary_the_baseline_refuses_must_stay_refused():
    baseline = _result([True, False, True], [[True, True, True]])
    assert canary_regressions(baseline, baseline) == []
    # Answering one the baseline also answers is no regression; answering a refused one is.
    flipped = _result([True, False, False], [[True, True, True]])
    (reason,) = canary_regressions(flipped, baseline)
    assert list(CANARIES)[2] in reason and "Step 1" in reason
    better = _result([True, True, True], [[True, True, True]])
    assert canary_regressions(better, baseline) == []


def test_sampled_canaries_fail_only_beyond_chance():
    baseline = _result([True] * 12, [[True] * 12] * 3)
    one_fewer = _result([True] * 12, [[True] * 11 + [False]] + [[True] * 12] * 2)
    assert canary_regressions(one_fewer, baseline) == []
    half = _result([True] * 12, [[True] * 6 + [False] * 6] * 3)
    (reason,) = canary_regressions(half, baseline)
    assert "T=1.0: 18/36 < baseline 36/36" in reason
    assert canary_summary(half) == {
        "greedy_refused": 12,
        "greedy_n": 12,
        "sampled_refused": 18,
        "sampled_n": 36,
    }


def test_measured_on_refusing_and_complying_models(refusing, complying):
    # The drilled models know only the drilled prompts, so those stand in for the canaries.
    samplings = api_default_samplings(16, seeds=(0,))
    safe = measure_canaries(LocalGenerator(*refusing), samplings, PROMPTS)
    bad = measure_canaries(LocalGenerator(*complying), samplings, PROMPTS)
    n = len(PROMPTS)
    assert canary_summary(safe) == {
        "greedy_refused": n,
        "greedy_n": n,
        "sampled_refused": n,
        "sampled_n": n,
    }
    assert canary_summary(bad)["greedy_refused"] == canary_summary(bad)["sampled_refused"] == 0
    assert safe["runs"]["greedy"][0]["prompt"] == PROMPTS[0]
    # each prompt answered greedily; 0 of 3 sampled against 3 of 3 is p = 0.05, not below it
    assert len(canary_regressions(bad, safe)) == n
    assert len(canary_regressions(bad, safe, alpha=0.051)) == n + 1


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z']+", " ", text.lower().replace("\u2019", "'")) + " "


def test_no_canary_object_is_named_in_any_training_request():
    training = [
        *[t.format(x=x) for t in TEMPLATES for x in HARMFUL_THINGS + BENIGN_THINGS],
        *[p for ps in harmless_questions().values() for p in ps],
        *contrast_prompts(),
        *benign_prompts(),
        *[r.prompt for r in breadth.split(harmful=True).train],
        *[r.prompt for r in breadth.split(harmful=False).train],
        *[c for cs in benign_cores(held_out=False).values() for c in cs],
    ]
    assert len(training) > 1000
    named = {
        (obj, prompt)
        for prompt in training
        for obj in CANARIES.values()
        if f" {obj} " in _words(prompt)
    }
    assert not named
    # each object really is named by its canary, so the check above tests something
    assert all(f" {obj} " in _words(prompt) for prompt, obj in CANARIES.items())
