"""Build token-level training examples: plain SFT, safety-recovery (the paper's augmentation) and RTO.

An example is a dict with `input_ids` and `labels` (Hugging Face causal-LM layout, -100 = no loss,
see `alignment.objectives`). Texts are tokenised once (`TokenizedPair`, `TokenizedTriplet`); the
random harmful-prefix length k is drawn each time an example is visited, so every epoch sees a
fresh k, as in the paper.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from alignment.chat import EncodedTurn, encode_text, encode_turn
from alignment.objectives import IGNORE_INDEX
from alignment.train_config import DEFAULT_MAX_PREFIX, DEFAULT_P_PREFIX


@dataclass(frozen=True)
class TokenizedPair:
    """(prompt, answer) ready for training: a benign pair, or a harmful prompt with its refusal."""

    turn: EncodedTurn


@dataclass(frozen=True)
class TokenizedTriplet:
    refusal: EncodedTurn  # harmful prompt -> refusal
    harmful_ids: list[int]  # the harmful answer, tokenised alone (as a prefilling attack would)


def tokenize_pair(
    tokenizer, prompt: str, response: str, system: str | None = None
) -> TokenizedPair:
    return TokenizedPair(encode_turn(tokenizer, prompt, response, system))


def tokenize_triplet(
    tokenizer, prompt: str, harmful: str, refusal: str, system: str | None = None
) -> TokenizedTriplet:
    return TokenizedTriplet(
        encode_turn(tokenizer, prompt, refusal, system), encode_text(tokenizer, harmful)
    )


def sample_prefix_length(
    rng: random.Random,
    harmful_len: int,
    p_prefix: float = DEFAULT_P_PREFIX,
    max_prefix: int = DEFAULT_MAX_PREFIX,
) -> int:
    """k = 0 with probability 1 - p_prefix, else k ~ Uniform{1 .. min(max_prefix, harmful_len)}."""
    if not 0.0 <= p_prefix <= 1.0:
        raise ValueError(f"p_prefix must be in [0, 1], got {p_prefix}")
    upper = min(max_prefix, harmful_len)
    if upper < 1 or rng.random() >= p_prefix:
        return 0
    return rng.randint(1, upper)


def _truncate(
    prompt_ids: list[int], answer: list[int], max_length: int
) -> tuple[list[int], list[int]]:
    if len(prompt_ids) >= max_length:
        raise ValueError(f"prompt of {len(prompt_ids)} tokens does not fit max_length={max_length}")
    return prompt_ids, answer[: max_length - len(prompt_ids)]


def pair_example(pair: TokenizedPair, max_length: int = 512) -> dict:
    """Cross-entropy on the answer and its end-of-turn token; the prompt is context only."""
    turn = pair.turn
    prompt_ids, answer = _truncate(turn.prompt_ids, turn.answer_ids + turn.end_ids, max_length)
    return {"input_ids": prompt_ids + answer, "labels": [IGNORE_INDEX] * len(prompt_ids) + answer}


# Over-cautious openings for harmless prompts (RECAP, arXiv 2510.00938): forced as context, followed
# by the helpful answer, they teach the converse of safety recovery: a harmless request deserves an
# answer even after a hesitant start. Written for deepguard.
CAUTIOUS_OPENINGS = (
    "I'm sorry, but I can't help with that.",
    "I can't assist with",
    "Sorry, I'm not able to help with",
    "I must decline",
    "As an AI, I cannot help with",
    "I'm not comfortable helping with",
    "I cannot provide",
    "Unfortunately, I can't help with",
)


def cautious_example(pair: TokenizedPair, opening_ids: list[int], max_length: int = 512) -> dict:
    """Prompt + an over-cautious opening as context, then the benign answer: loss on the answer only."""
    turn = pair.turn
    context = turn.prompt_ids + opening_ids
    context, answer = _truncate(context, turn.answer_ids + turn.end_ids, max_length)
    return {"input_ids": context + answer, "labels": [IGNORE_INDEX] * len(context) + answer}


def recovery_example(
    triplet: TokenizedTriplet, k: int, rto: bool = False, max_length: int = 512
) -> dict:
    """Prompt + first k harmful tokens as context, then the refusal: the safety-recovery example.

    Loss only on the refusal and its end-of-turn token. With `rto`, every position from the end
    of the prompt through the harmful prefix is also trained to emit the refusal's first token
    (DeRTa's reinforced transition), so the model can turn back at any point, not only at k.
    """
    turn = triplet.refusal
    refusal = turn.answer_ids + turn.end_ids
    room = max_length - len(turn.prompt_ids) - len(refusal)
    if room < 0:
        raise ValueError(
            f"prompt and refusal ({len(turn.prompt_ids) + len(refusal)} tokens) exceed max_length={max_length}"
        )
    prefix = triplet.harmful_ids[: min(k, room)]
    prefix_labels = [refusal[0]] * len(prefix) if rto else [IGNORE_INDEX] * len(prefix)
    return {
        "input_ids": turn.prompt_ids + prefix + refusal,
        "labels": [IGNORE_INDEX] * len(turn.prompt_ids) + prefix_labels + refusal,
    }
