import random
from collections import Counter

import pytest
from tiny import make_tokenizer

from alignment.augment import (
    pair_example,
    recovery_example,
    sample_prefix_length,
    tokenize_pair,
    tokenize_triplet,
)
from alignment.objectives import IGNORE_INDEX

HARMFUL = "Sure, here is how to pick a lock: first insert the tension wrench and rake the pins."
REFUSAL = "I cannot help with that request because it could hurt people."


def test_prefix_length_distribution():
    rng = random.Random(7)
    n, length = 40000, 30
    counts = Counter(
        sample_prefix_length(rng, length, p_prefix=0.5, max_prefix=100) for _ in range(n)
    )
    zero = counts.pop(0)
    # k = 0 with probability 0.5: binomial, 5 standard deviations
    assert abs(zero - n / 2) < 5 * (n * 0.25) ** 0.5
    # k > 0 uniform over 1..min(C, |h|) = 1..30: chi-square, 29 dof, critical value at p = 1e-4 is 66.6
    assert set(counts) == set(range(1, length + 1))
    expected = (n - zero) / length
    chi2 = sum((counts[k] - expected) ** 2 / expected for k in range(1, length + 1))
    assert chi2 < 66.6


def test_prefix_length_capped_by_c():
    rng = random.Random(0)
    ks = [sample_prefix_length(rng, 500, p_prefix=1.0, max_prefix=100) for _ in range(5000)]
    assert min(ks) == 1 and max(ks) == 100


def test_prefix_length_edge_cases():
    rng = random.Random(0)
    assert sample_prefix_length(rng, 0, p_prefix=1.0) == 0
    assert all(sample_prefix_length(rng, 10, p_prefix=0.0) == 0 for _ in range(100))
    with pytest.raises(ValueError):
        sample_prefix_length(rng, 10, p_prefix=1.5)


@pytest.fixture(scope="module")
def triplet():
    tok = make_tokenizer("llama3")
    return tok, tokenize_triplet(tok, "Pick a lock", HARMFUL, REFUSAL)


def test_recovery_example_trains_only_the_refusal(triplet):
    tok, t = triplet
    ex = recovery_example(t, k=6)
    n_prompt = len(t.refusal.prompt_ids)
    assert ex["input_ids"][n_prompt : n_prompt + 6] == t.harmful_ids[:6]
    assert all(label == IGNORE_INDEX for label in ex["labels"][: n_prompt + 6])
    trained = [label for label in ex["labels"] if label != IGNORE_INDEX]
    assert tok.decode(trained) == REFUSAL + "<|eot_id|>"


def test_rto_labels_put_the_refusal_start_at_every_harmful_position(triplet):
    tok, t = triplet
    ex = recovery_example(t, k=6, rto=True)
    n_prompt = len(t.refusal.prompt_ids)
    first = t.refusal.answer_ids[0]
    # labels[t] is predicted from position t-1: from the prompt's end and after each harmful token
    assert ex["labels"][n_prompt : n_prompt + 7] == [first] * 7
    assert ex["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert (
        ex["input_ids"][n_prompt : n_prompt + 6] == t.harmful_ids[:6]
    )  # the input keeps the harmful text
    assert ex["labels"][n_prompt + 6 :] == t.refusal.answer_ids + t.refusal.end_ids


def test_k_zero_is_plain_safety_sft(triplet):
    _, t = triplet
    ex = recovery_example(t, k=0)
    assert ex["input_ids"] == t.refusal.prompt_ids + t.refusal.answer_ids + t.refusal.end_ids


def test_prefix_shrinks_to_fit_max_length(triplet):
    _, t = triplet
    fixed = len(t.refusal.prompt_ids) + len(t.refusal.answer_ids) + len(t.refusal.end_ids)
    ex = recovery_example(t, k=50, max_length=fixed + 3)
    assert len(ex["input_ids"]) == fixed + 3
    with pytest.raises(ValueError, match="max_length"):
        recovery_example(t, k=0, max_length=fixed - 1)


def test_pair_example_masks_prompt():
    tok = make_tokenizer("gemma")
    ex = pair_example(tokenize_pair(tok, "Write a poem", "The sea and the moon."))
    assert (
        tok.decode([x for x in ex["labels"] if x != IGNORE_INDEX])
        == "The sea and the moon.<end_of_turn>"
    )


def test_cautious_example_trains_the_helpful_answer_after_a_hesitant_opening():
    from alignment.augment import CAUTIOUS_OPENINGS, cautious_example
    from alignment.chat import encode_text
    from proxy.watch.detector import RefusalDetector

    tok = make_tokenizer("chatml")
    pair = tokenize_pair(
        tok, "How do I get rid of fruit flies?", "Set a trap of vinegar and dish soap."
    )
    opening = encode_text(tok, CAUTIOUS_OPENINGS[0] + "\n")
    ex = cautious_example(pair, opening)
    trained = tok.decode([x for x in ex["labels"] if x != IGNORE_INDEX])
    assert trained == "Set a trap of vinegar and dish soap.<|im_end|>"
    assert (
        tok.decode(ex["input_ids"]).count(CAUTIOUS_OPENINGS[0]) == 1
    )  # the opening is context only
    # Every opening must read as the start of a refusal, or it would teach nothing about recovery.
    detector = RefusalDetector.default()
    assert all(detector.is_refusal(text + " that.") for text in CAUTIOUS_OPENINGS)
