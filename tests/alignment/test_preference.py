"""Preference pairs (alignment/preference.py) and the DPO loss (alignment/objectives.py)."""

import math
import random

import pytest
import torch
import torch.nn.functional as F
from tiny import make_model, make_tokenizer

from alignment.augment import tokenize_pair, tokenize_triplet
from alignment.chat import encode_text
from alignment.objectives import (
    IGNORE_INDEX,
    preference_terms,
    refusal_anchor_terms,
    sequence_logprobs,
    switch_guard_terms,
)
from alignment.preference import (
    MIN_REJECTED,
    PreferenceCollator,
    benign_preference,
    harmful_preference,
    refusal_start_ids,
    refusal_tokens,
    sample_answer_prefix,
)
from alignment.reference import compute_reference_logprobs

HARMFUL = "Sure, here is how to pick a lock: first insert the tension wrench into the keyway"
ANSWER = "Bread needs flour, water, salt and yeast; knead it, let it rise, then bake it hot."


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer("chatml")


def _answer(example):
    return [
        t
        for t, label in zip(example["input_ids"], example["labels"], strict=True)
        if label != IGNORE_INDEX
    ]


def _context(example):
    return [
        t
        for t, label in zip(example["input_ids"], example["labels"], strict=True)
        if label == IGNORE_INDEX
    ]


def test_harmful_pair_shares_the_forced_prefix_and_rejects_the_harm_that_follows(tok):
    triplet = tokenize_triplet(tok, "Pick a lock", HARMFUL, "I cannot help with that.")
    pair = harmful_preference(triplet, k=4)
    context = triplet.refusal.prompt_ids + triplet.harmful_ids[:4]
    assert _context(pair["chosen"]) == context == _context(pair["rejected"])
    assert _answer(pair["chosen"]) == triplet.refusal.answer_ids + triplet.refusal.end_ids
    assert _answer(pair["rejected"]) == triplet.harmful_ids[4:]


def test_harmful_prefix_always_leaves_harm_to_reject(tok):
    triplet = tokenize_triplet(tok, "Pick a lock", HARMFUL, "I cannot help with that.")
    pair = harmful_preference(triplet, k=10_000)
    assert len(_answer(pair["rejected"])) == MIN_REJECTED
    assert _answer(pair["rejected"]) == triplet.harmful_ids[-MIN_REJECTED:]


def test_answers_are_cut_to_the_token_budget(tok):
    triplet = tokenize_triplet(tok, "Pick a lock", HARMFUL, "I cannot help with that, sorry.")
    pair = harmful_preference(triplet, k=0, answer_tokens=3)
    assert len(_answer(pair["chosen"])) == 3 == len(_answer(pair["rejected"]))


def test_benign_pair_prefers_the_answer_over_a_refusal(tok):
    pair = tokenize_pair(tok, "How do I bake bread?", ANSWER)
    refusal = refusal_tokens(tok, "I can't help with that.", pair.turn.end_ids, mid_answer=False)
    example = benign_preference(pair, refusal)
    assert _context(example["chosen"]) == pair.turn.prompt_ids == _context(example["rejected"])
    assert _answer(example["chosen"]) == pair.turn.answer_ids + pair.turn.end_ids
    assert _answer(example["rejected"]) == refusal
    assert refusal[-len(pair.turn.end_ids) :] == pair.turn.end_ids


def test_mid_answer_pair_rejects_switching_to_a_refusal(tok):
    pair = tokenize_pair(tok, "How do I bake bread?", ANSWER)
    refusal = refusal_tokens(tok, "I can't help with that.", pair.turn.end_ids, mid_answer=True)
    assert refusal[: -len(pair.turn.end_ids)] == encode_text(tok, " I can't help with that.")
    example = benign_preference(pair, refusal, k=6)
    assert _context(example["chosen"]) == pair.turn.prompt_ids + pair.turn.answer_ids[:6]
    assert _answer(example["chosen"]) == pair.turn.answer_ids[6:] + pair.turn.end_ids
    assert _answer(example["rejected"]) == refusal


def test_answer_prefix_is_in_the_watch_window_or_absent():
    rng = random.Random(0)
    drawn = [sample_answer_prefix(rng, 100, 0.5) for _ in range(400)]
    assert 150 < drawn.count(0) < 250
    assert all(k == 0 or 5 <= k <= 40 for k in drawn)
    assert sample_answer_prefix(rng, 8, 1.0) == 0  # too short to force a start and go on
    assert all(sample_answer_prefix(rng, 100, 0.0) == 0 for _ in range(50))
    with pytest.raises(ValueError, match="p_answer_prefix"):
        sample_answer_prefix(rng, 100, 1.5)


@pytest.fixture(scope="module")
def batch(tok):
    triplet = tokenize_triplet(tok, "Pick a lock", HARMFUL, "I cannot help with that.")
    pair = tokenize_pair(tok, "How do I bake bread?", ANSWER)
    refusal = refusal_tokens(tok, "I can't help with that.", pair.turn.end_ids, mid_answer=False)
    examples = [harmful_preference(triplet, k=3), benign_preference(pair, refusal)]
    model = make_model(tok)
    sides = [e[s] for e in examples for s in ("chosen", "rejected")]
    for side, ref in zip(
        sides, compute_reference_logprobs(model, sides, tok.pad_token_id), strict=True
    ):
        side["ref_logprobs"] = ref
    return model, PreferenceCollator(tok.pad_token_id)(examples), examples


def _logits(model, collated):
    return model(input_ids=collated["input_ids"], attention_mask=collated["attention_mask"]).logits


def preference_loss(*args, **kwargs):
    return preference_terms(*args, **kwargs).loss


def test_collator_puts_chosen_rows_before_rejected_rows(batch):
    _, collated, examples = batch
    assert collated["input_ids"].shape[0] == 4
    for row, side in enumerate(
        [examples[0]["chosen"], examples[1]["chosen"], examples[0]["rejected"]]
    ):
        n = len(side["input_ids"])
        assert collated["input_ids"][row, :n].tolist() == side["input_ids"]


def test_at_the_reference_the_dpo_term_is_log_two_per_pair(batch):
    model, collated, _ = batch
    logits = _logits(model, collated).detach()
    loss = preference_loss(
        logits, collated["labels"], collated["ref_logprobs"], pairs_per_step=2, sft_weight=0.0
    )
    assert loss.item() == pytest.approx(math.log(2), abs=1e-4)


def test_sft_term_is_the_chosen_answers_mean_token_nll(batch):
    model, collated, _ = batch
    logits = _logits(model, collated).detach()
    labels, ref = collated["labels"], collated["ref_logprobs"]
    with_sft = preference_loss(logits, labels, ref, pairs_per_step=2, sft_weight=1.0)
    without = preference_loss(logits, labels, ref, pairs_per_step=2, sft_weight=0.0)
    nll = [
        F.cross_entropy(logits[i, :-1], labels[i, 1:], ignore_index=IGNORE_INDEX) for i in (0, 1)
    ]
    assert (with_sft - without).item() == pytest.approx(sum(nll).item() / 2, abs=1e-4)


def test_micro_batches_add_up_to_the_whole_step(batch):
    model, collated, _ = batch
    logits = _logits(model, collated).detach()
    labels, ref = collated["labels"], collated["ref_logprobs"]
    whole = preference_loss(logits, labels, ref, pairs_per_step=2)
    split = sum(
        preference_loss(logits[[i, i + 2]], labels[[i, i + 2]], ref[[i, i + 2]], pairs_per_step=2)
        for i in (0, 1)
    )
    assert split.item() == pytest.approx(whole.item(), abs=1e-5)


def test_a_gradient_step_widens_the_margin(tok, batch):
    _, collated, _ = batch
    model = make_model(tok)  # same seed as the reference model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    labels, ref = collated["labels"], collated["ref_logprobs"]

    def margins():
        logits = _logits(model, collated)
        seq = sequence_logprobs(logits, labels)
        return seq[:2] - seq[2:], logits

    before, logits = margins()
    preference_loss(logits, labels, ref, pairs_per_step=2, sft_weight=0.0).backward()
    optimizer.step()
    after, _ = margins()
    assert (after > before.detach()).all()


def test_refusal_start_ids_cover_a_refusal_at_the_start_glued_and_after_a_space(tok):
    ids = refusal_start_ids(tok, ["I can't help with that.", "Sorry, no."])
    for text in ("I can't", "Sorry", " I can't", " Sorry"):
        assert encode_text(tok, text)[0] in ids
    assert encode_text(tok, "Bread")[0] not in ids


def test_collator_marks_only_helpful_answers_to_harmless_prompts_as_guarded(batch):
    _, collated, _ = batch
    # rows: harmful chosen (a refusal), harmless chosen (the answer), then the two rejected sides
    assert collated["guarded"].tolist() == [False, True, False, False]


def test_only_a_refusal_from_the_answers_start_is_anchored(tok, batch):
    _, collated, _ = batch
    # the batch's harmful pair forces 3 harmful tokens: its refusal is a recovery, not anchored
    assert collated["anchored"].tolist() == [False, False, False, False]
    triplet = tokenize_triplet(tok, "Pick a lock", HARMFUL, "I cannot help with that.")
    pair = harmful_preference(triplet, k=0)
    assert pair["chosen"]["anchored"] and not pair["rejected"].get("anchored")
    collated = PreferenceCollator(tok.pad_token_id)([pair])
    assert collated["anchored"].tolist() == [True, False]


def test_only_a_helpful_answer_from_the_answers_start_is_capped(tok, batch):
    _, collated, _ = batch
    # rows: harmful chosen, harmless chosen (nothing forced), then the two rejected sides
    assert collated["capped"].tolist() == [False, True, False, False]
    pair = tokenize_pair(tok, "How do I bake bread?", ANSWER)
    refusal = refusal_tokens(tok, "I can't help with that.", pair.turn.end_ids, mid_answer=True)
    mid_answer = benign_preference(pair, refusal, k=5)
    assert mid_answer["chosen"]["guarded"] and not mid_answer["chosen"]["capped"]


def _guard(logits, collated, start_ids, floor=1e-4, rows=2, skip=0):
    return switch_guard_terms(
        logits, collated["labels"], collated["guarded"], torch.tensor(start_ids), floor, rows, skip
    )


def test_switch_guard_is_the_mean_hinge_on_refusal_start_mass_over_the_harmless_answer(tok, batch):
    model, collated, _ = batch
    logits = _logits(model, collated).detach()
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    terms = _guard(logits, collated, start_ids, floor=1e-4, rows=2)
    # By hand, row 1 only (the harmless answer), every answer position but its start tokens.
    labels = collated["labels"][1, 1:]
    keep = (labels != IGNORE_INDEX) & ~torch.isin(labels, torch.tensor(start_ids))
    mass = logits[1, :-1][keep].log_softmax(-1)[:, start_ids].logsumexp(-1)
    expected = (mass - math.log(1e-4)).clamp(min=0).mean() / 2
    assert terms.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms.start_mass.item() == pytest.approx(mass.exp().mean().item(), rel=1e-5)
    # A floor above every position's mass: nothing left to push.
    assert _guard(logits, collated, start_ids, floor=0.999).loss.item() == 0.0


def test_switch_guard_ignores_refusals_and_rejected_answers(tok, batch):
    model, collated, _ = batch
    logits = _logits(model, collated).detach()
    unguarded = {**collated, "guarded": torch.zeros(4, dtype=torch.bool)}
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    assert _guard(logits, unguarded, start_ids).loss.item() == 0.0


def test_a_guard_step_lowers_the_refusal_start_mass_inside_the_harmless_answer(tok, batch):
    _, collated, _ = batch
    model = make_model(tok)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    before = _guard(_logits(model, collated), collated, start_ids, floor=1e-9)
    before.loss.backward()
    optimizer.step()
    after = _guard(_logits(model, collated), collated, start_ids, floor=1e-9)
    assert after.start_mass.item() < before.start_mass.item()


def test_switch_guard_leaves_the_answers_first_tokens_to_the_pairs(tok, batch):
    model, collated, _ = batch
    logits = _logits(model, collated).detach()
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    labels = collated["labels"][1, 1:]
    answer = (labels != IGNORE_INDEX).nonzero().squeeze(-1)
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[answer[3:]] = True  # skip=3: the guard starts at the 4th answer token
    keep &= ~torch.isin(labels, torch.tensor(start_ids))
    mass = logits[1, :-1][keep].log_softmax(-1)[:, start_ids].logsumexp(-1)
    expected = (mass - math.log(1e-9)).clamp(min=0).mean() / 2
    skipped = _guard(logits, collated, start_ids, floor=1e-9, skip=3)
    assert skipped.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert _guard(logits, collated, start_ids, skip=10_000).loss.item() == 0.0


def _anchor(logits, collated, start_ids, floor=0.9, rows=2, anchored=(True, False, False, False)):
    return refusal_anchor_terms(
        logits, collated["labels"], torch.tensor(anchored), torch.tensor(start_ids), floor, rows
    )


def test_refusal_anchor_is_the_hinge_on_refusal_start_mass_at_the_refusals_first_token(tok, batch):
    model, collated, _ = batch
    logits = _logits(model, collated).detach()
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    # By hand: row 0 (the refusal), at the position that predicts its first answer token only.
    first = (collated["labels"][0, 1:] != IGNORE_INDEX).nonzero()[0, 0]
    mass = logits[0, first].log_softmax(-1)[start_ids].logsumexp(-1)
    terms = _anchor(logits, collated, start_ids, floor=0.999999)
    assert terms.loss.item() == pytest.approx((math.log(0.999999) - mass).item() / 2, rel=1e-5)
    assert terms.start_mass.item() == pytest.approx(mass.exp().item(), rel=1e-5)
    # A floor below the mass there: nothing left to hold up.
    low = mass.exp().item() / 2
    assert _anchor(logits, collated, start_ids, floor=low).loss.item() == 0.0
    # Rows not marked carry nothing.
    assert _anchor(logits, collated, start_ids, anchored=(False,) * 4).loss.item() == 0.0


def test_an_anchor_step_raises_the_refusal_start_mass_where_the_refusal_begins(tok, batch):
    _, collated, _ = batch
    model = make_model(tok)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    before = _anchor(_logits(model, collated), collated, start_ids, floor=0.999999)
    before.loss.backward()
    optimizer.step()
    after = _anchor(_logits(model, collated), collated, start_ids, floor=0.999999)
    assert after.start_mass.item() > before.start_mass.item()


def _first_answer_mass(logits, collated, row, start_ids):
    first = (collated["labels"][row, 1:] != IGNORE_INDEX).nonzero()[0, 0]
    return logits[row, first].log_softmax(-1)[start_ids].logsumexp(-1)


def _capped_anchor(logits, collated, start_ids, ceiling, capped=None):
    capped = collated["capped"] if capped is None else torch.tensor(capped)
    return refusal_anchor_terms(
        logits,
        collated["labels"],
        collated["anchored"],  # none here: the batch's refusal follows a forced prefix
        torch.tensor(start_ids),
        0.9,
        2,
        capped,
        ceiling,
    )


def test_anchor_ceiling_is_the_mirror_hinge_at_a_helpful_answers_first_token(tok, batch):
    model, collated, _ = batch
    logits = _logits(model, collated).detach()
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    mass = _first_answer_mass(logits, collated, 1, start_ids)  # row 1: the helpful answer
    ceiling = mass.exp().item() / 10
    terms = _capped_anchor(logits, collated, start_ids, ceiling)
    assert terms.loss.item() == pytest.approx((mass - math.log(ceiling)).item() / 2, rel=1e-5)
    assert terms.capped_mass.item() == pytest.approx(mass.exp().item(), rel=1e-5)
    assert terms.start_mass is None  # no anchored row in this batch
    # A ceiling above the mass there: nothing to hold down.
    assert _capped_anchor(logits, collated, start_ids, 0.999).loss.item() == 0.0
    # No ceiling, or no capped row: the term is off.
    assert _capped_anchor(logits, collated, start_ids, None).loss.item() == 0.0
    assert _capped_anchor(logits, collated, start_ids, ceiling, (False,) * 4).loss.item() == 0.0


def test_anchor_ceiling_spares_a_helpful_answer_that_itself_starts_like_a_refusal(tok):
    pair = tokenize_pair(tok, "How do I bake bread?", "I would start with flour and water.")
    refusal = refusal_tokens(tok, "I can't help with that.", pair.turn.end_ids, mid_answer=False)
    collated = PreferenceCollator(tok.pad_token_id)([benign_preference(pair, refusal)])
    assert collated["capped"].tolist() == [True, False]
    logits = _logits(make_model(tok), collated).detach()
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    terms = _capped_anchor(logits, collated, start_ids, 1e-9)
    assert terms.loss.item() == 0.0 and terms.capped_mass is None


def test_a_capped_anchor_step_lowers_the_refusal_start_mass_where_the_answer_begins(tok, batch):
    _, collated, _ = batch
    model = make_model(tok)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    start_ids = refusal_start_ids(tok, ["I can't help with that."])
    before = _capped_anchor(_logits(model, collated), collated, start_ids, 1e-9)
    before.loss.backward()
    optimizer.step()
    after = _capped_anchor(_logits(model, collated), collated, start_ids, 1e-9)
    assert after.capped_mass.item() < before.capped_mass.item()
