"""Making requests: both sides in the same wordings, and no prompt from an evaluation set."""

from __future__ import annotations

import pytest

from alignment.data import breadth
from alignment.data.files import read_prompts
from alignment.data.making_requests import (
    BENIGN_THINGS,
    HARMFUL_THINGS,
    TEMPLATES,
    main,
    making_requests,
)
from alignment.data.sources import harmbench
from tests.support.processes import SHARED
from tests.support.words import normalised as _norm
from tests.support.words import word_overlap


def test_each_thing_in_distinct_wordings_and_every_wording_used():
    prompts = making_requests(HARMFUL_THINGS, per_thing=3)
    assert len(prompts) == 3 * len(HARMFUL_THINGS) == len(set(prompts))
    for i, thing in enumerate(HARMFUL_THINGS):
        assert all(thing in p for p in prompts[3 * i : 3 * i + 3])
    used = {t for t in TEMPLATES for p in prompts if p.startswith(t.split("{x}")[0])}
    assert used == set(TEMPLATES)
    assert making_requests(HARMFUL_THINGS) == making_requests(HARMFUL_THINGS)  # seeded


@pytest.mark.parametrize("per_thing", [0, len(TEMPLATES) + 1])
def test_refuses_impossible_counts(per_thing):
    with pytest.raises(ValueError, match="per_thing"):
        making_requests(BENIGN_THINGS, per_thing)


def test_the_sides_share_wordings_not_things():
    assert not set(HARMFUL_THINGS) & set(BENIGN_THINGS)
    assert len(BENIGN_THINGS) == len(HARMFUL_THINGS)  # so neither side's wording dominates


def test_no_request_comes_from_an_evaluation_set():
    prompts = making_requests(HARMFUL_THINGS + BENIGN_THINGS, per_thing=len(TEMPLATES))
    held = [r.prompt for s in (True, False) for r in breadth.split(harmful=s).held_out]
    held += harmbench()
    held += read_prompts(SHARED / "data" / "xstest" / "xstest_safe_prompts.csv")
    held_norm = {_norm(h) for h in held}
    assert not [p for p in prompts if _norm(p) in held_norm]
    closest = max((word_overlap(p, h), p, h) for p in prompts for h in held)
    assert closest[0] < 0.7, closest


def test_cli_writes_both_files(tmp_path):
    harmful, benign = tmp_path / "h.txt", tmp_path / "b.txt"
    main([str(harmful), str(benign)])
    assert harmful.read_text().splitlines() == making_requests(HARMFUL_THINGS)
    assert benign.read_text().splitlines() == making_requests(BENIGN_THINGS)
    with pytest.raises(SystemExit, match="usage"):
        main([str(harmful)])
