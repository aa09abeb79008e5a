"""Preference pairs for the `preference` objective: the same context, a chosen and a rejected answer.

Supervised recipes (augmented, constrained) only raise the likelihood of the wanted answer, and the
measured result is that harmful-request refusal and harmless-request refusal move together
(docs/evaluation.md, recipes A-D). A preference pair also pushes the unwanted answer down, in the
same step, for the same context, so the model is taught the contrast itself:

- harmful prompt, optionally with the first k tokens of a harmful answer forced (the paper's
  augmentation, so depth is kept): chosen = the refusal, rejected = the harmful answer's next tokens;
- harmless prompt: chosen = the helpful answer, rejected = a refusal from the bank (over-refusal);
- harmless prompt with the first k tokens of its helpful answer forced: chosen = the rest of the
  answer, rejected = switching to a refusal there (the spurious mid-answer recovery the watch sees).

The chosen side of a harmless pair is marked `guarded`: with `--preference-guard-weight` the
switch guard also holds the probability of a refusal's first token down at each of its positions.
The chosen side of a harmful pair with nothing forced (a refusal from the answer's start) is
marked `anchored`: with `--preference-anchor-weight` the refusal anchor holds that probability up
at its first token. The chosen side of a harmless pair with nothing forced is marked `capped`: with
`--preference-anchor-ceiling` the anchor also holds that probability down at its first token.

An example is `{"chosen": ex, "rejected": ex}`, each in `alignment.augment`'s layout, and
`PreferenceCollator` stacks a micro-batch as [chosen rows..., rejected rows...] for
`alignment.objectives.preference_terms`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from alignment.augment import TokenizedPair, TokenizedTriplet, recovery_example
from alignment.chat import encode_text
from alignment.mixing import PadCollator
from alignment.objectives import IGNORE_INDEX

# Shortest forced start of a helpful answer for a mid-answer pair: the watch's start window (a
# refusal from token 5 on counts as recovery, docs/evaluation.md).
MIN_ANSWER_PREFIX = 5
MAX_ANSWER_PREFIX = 40
# A harmful prefix leaves at least this many harmful tokens to reject.
MIN_REJECTED = 8
# The two sequences of a pair, in the order `PreferenceCollator` stacks them.
PAIR_SIDES = ("chosen", "rejected")
# Marks a helpful answer to a harmless prompt: the rows the switch guard covers
# (`alignment.objectives.switch_guard_terms`).
GUARDED = "guarded"
# Marks a refusal of a harmful request from the answer's start: the rows the refusal anchor covers
# (`alignment.objectives.refusal_anchor_terms`).
ANCHORED = "anchored"
# Marks a helpful answer to a harmless prompt from the answer's start: the rows whose first token
# the refusal anchor's ceiling holds down (`alignment.objectives.refusal_anchor_terms`).
CAPPED = "capped"
# Every row marker, in the order `PreferenceCollator` adds them to a batch.
ROW_MARKERS = (GUARDED, ANCHORED, CAPPED)


def answer_row(context: list[int], answer: list[int]) -> dict:
    """One side of a pair: the loss covers `answer`, never `context`."""
    return {"input_ids": context + answer, "labels": [IGNORE_INDEX] * len(context) + answer}


def harmful_preference(triplet: TokenizedTriplet, k: int, answer_tokens: int = 64) -> dict:
    """Prompt + k harmful tokens; chosen: the refusal, rejected: the harmful answer's next tokens."""
    k = max(0, min(k, len(triplet.harmful_ids) - MIN_REJECTED))
    chosen = recovery_example(triplet, k)
    context = triplet.refusal.prompt_ids + triplet.harmful_ids[:k]
    chosen_answer = chosen["input_ids"][len(context) :][:answer_tokens]
    rejected_answer = triplet.harmful_ids[k : k + answer_tokens]
    return {
        # Only a refusal at the answer's start is anchored: holding a refusal's first token up
        # after a forced prefix taught harmless answers to switch there (docs/evaluation.md).
        "chosen": {**answer_row(context, chosen_answer), ANCHORED: k == 0},
        "rejected": answer_row(context, rejected_answer),
    }


def benign_preference(
    pair: TokenizedPair, refusal_ids: list[int], k: int = 0, answer_tokens: int = 64
) -> dict:
    """Prompt + k helpful tokens; chosen: the rest of the answer, rejected: a refusal instead.

    `refusal_ids` is the refusal as the model would write it at that point: with its end-of-turn,
    and with a leading space when k > 0 (see `refusal_tokens`).
    """
    turn = pair.turn
    answer = turn.answer_ids + turn.end_ids
    k = max(0, min(k, len(turn.answer_ids) - 1))
    context = turn.prompt_ids + turn.answer_ids[:k]
    return {
        "chosen": {
            **answer_row(context, answer[k:][:answer_tokens]),
            GUARDED: True,
            CAPPED: k == 0,
        },
        "rejected": answer_row(context, refusal_ids[:answer_tokens]),
    }


def sample_answer_prefix(rng: random.Random, answer_len: int, p_answer_prefix: float) -> int:
    """k for a benign pair: 0 w.p. 1 - p, else U{5 .. min(40, answer_len - 4)} (0 if too short)."""
    if not 0.0 <= p_answer_prefix <= 1.0:
        raise ValueError(f"p_answer_prefix must be in [0, 1], got {p_answer_prefix}")
    upper = min(MAX_ANSWER_PREFIX, answer_len - 4)
    if upper < MIN_ANSWER_PREFIX or rng.random() >= p_answer_prefix:
        return 0
    return rng.randint(MIN_ANSWER_PREFIX, upper)


def refusal_tokens(tokenizer, refusal: str, end_ids: list[int], mid_answer: bool) -> list[int]:
    """A bank refusal as answer tokens: the whole answer, or a switch in the middle of one."""
    return encode_text(tokenizer, (" " if mid_answer else "") + refusal) + end_ids


def refusal_start_ids(tokenizer, refusals: Sequence[str]) -> list[int]:
    """The first token of every refusal, at an answer's start or glued to a word ("I"), and after
    a space (" I"): how a refusal begins wherever it is sampled. The switch guard's token set."""
    ids = set()
    for refusal in refusals:
        for text in (refusal, " " + refusal):
            ids.add(encode_text(tokenizer, text)[0])
    return sorted(ids)


class PreferenceCollator:
    """Pads a micro-batch of preference examples as one batch: chosen rows first, then rejected;
    `guarded` says which rows are helpful answers to harmless prompts, `anchored` which are
    refusals of harmful ones from the answer's start, `capped` which are helpful answers from the
    answer's start."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = PadCollator(pad_token_id)

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        rows = [e[side] for side in PAIR_SIDES for e in examples]
        batch = self.pad(rows)
        for marker in ROW_MARKERS:
            batch[marker] = torch.tensor([bool(row.get(marker)) for row in rows])
        return batch
