"""The options of a training run, defined once: `TrainConfig` is what `train()` takes, what is
saved beside the checkpoints, and (through `alignment.dataclass_cli`) the `deepguard train` flags.

No torch here: `deepguard` builds every verb's parser at start, also on the light proxy install.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from alignment.dataclass_cli import option

OBJECTIVES = ("sft", "augmented", "constrained", "rto", "augmented+rto", "preference")
# The paper's constrained-loss weights: beta_1..beta_5, and beta_t for t > 5.
DEFAULT_BETAS = (0.5, 2.0, 2.0, 2.0, 2.0)
DEFAULT_LATER_BETA = 0.1
# Data augmentation: probability that an example gets a harmful prefix (k > 0), and C, the
# largest harmful prefix in tokens.
DEFAULT_P_PREFIX = 0.5
DEFAULT_MAX_PREFIX = 100


def family_repeats(entries: list[str]) -> dict[str, int]:
    """`["first_person=3", "long=3"]` -> {"first_person": 3, "long": 3}: `--repeat-family`."""
    repeats = {}
    for entry in entries:
        family, _, times = entry.partition("=")
        family, times = family.strip(), times.strip()
        if not family or not times.isdigit() or int(times) < 1:
            raise ValueError(
                f"--repeat-family takes FAMILY=N with N >= 1 (e.g. first_person=3), got {entry!r}"
            )
        repeats[family] = int(times)
    return repeats


def parse_family_repeat(text: str) -> str:
    """One `--repeat-family` value, checked when the flag is read and kept as written."""
    try:
        family_repeats([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text.strip()


def parse_floats(text: str) -> tuple[float, ...]:
    """`0.5,2,2` -> (0.5, 2.0, 2.0): how `--betas` is written on the command line."""
    return tuple(float(b) for b in text.split(",") if b.strip())


@dataclass
class TrainConfig:
    """Every knob of a run; saved beside the checkpoints and in the exported model card."""

    output_dir: str = option(
        "runs/train", "output directory (checkpoints, model/, logs)", flag="--out"
    )
    model: str = option("default", "HF directory, .gguf file, or 'default'")
    objective: str = option("augmented", "training objective", choices=OBJECTIVES)
    triplets: str | None = option(
        None, "harmful triplets JSONL {prompt, harmful, refusal, ...} (overrides --data)"
    )
    pairs: str | None = option(
        None,
        "prompt/response JSONL: benign anchors or your fine-tuning data (overrides --data)",
    )
    limit_triplets: int | None = option(None, "use only the first N triplets")
    limit_pairs: int | None = option(None, "use only the first N pairs")
    epochs: int = option(4, "passes over the data")
    max_steps: int = option(-1, "stop after this many optimizer steps (> 0; smoke runs)")
    learning_rate: float = option(5e-5, "peak learning rate", flag="--lr")
    adam_beta1: float = option(0.9, "Adam beta1 (the paper uses 0.5 for constrained fine-tuning)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    warmup_steps: int = option(0, "linear warm-up steps")
    lr_scheduler: str = option("constant", "transformers learning-rate schedule (e.g. cosine)")
    safety_per_step: int = option(16, "harmful (safety) examples in every optimizer step")
    benign_per_step: int = option(64, "benign examples in every optimizer step")
    micro_batch: int = option(
        8, "examples per forward pass (gradient accumulation covers the rest)"
    )
    p_prefix: float = option(
        DEFAULT_P_PREFIX, "probability that a safety example gets a harmful prefix"
    )
    max_prefix: int = option(DEFAULT_MAX_PREFIX, "largest harmful prefix, in tokens")
    p_cautious: float = option(
        0.0,
        "share of benign examples that follow an over-cautious opening (context only) with "
        "the helpful answer: against spurious refusals and mid-answer recovery on harmless prompts",
    )
    preference_beta: float = option(
        0.1, "preference: DPO's beta (how far from the starting model the preferences may go)"
    )
    preference_sft_weight: float = option(
        1.0, "preference: weight of the chosen answers' cross-entropy beside the DPO loss"
    )
    preference_guard_weight: float = option(
        0.0,
        "preference: weight of the switch guard, a hinge on the probability of a refusal's first "
        "token at every position of every harmless answer (against refusals sampled mid-answer "
        "at temperature 1.0); 0 = off",
    )
    preference_guard_floor: float = option(
        1e-4, "preference: the switch guard stops pushing once that probability is below this"
    )
    preference_guard_skip: int = option(
        5,
        "preference: the switch guard leaves each harmless answer's first N tokens to the "
        "preference pairs (5: the watch's start window)",
    )
    preference_anchor_weight: float = option(
        0.0,
        "preference: weight of the refusal anchor, a hinge holding the probability of a refusal's "
        "first token up at the start of every refusal of a harmful request (the switch guard's "
        "counterweight); 0 = off",
    )
    preference_anchor_floor: float = option(
        0.9, "preference: the refusal anchor stops pushing once that probability is above this"
    )
    preference_anchor_ceiling: float | None = option(
        None,
        "preference: the refusal anchor also holds that probability below this at the start of "
        "every helpful answer to a harmless prompt, so the first token has to tell the prompts "
        "apart rather than rise for all of them; unset = off",
    )
    p_answer_prefix: float = option(
        0.3,
        "preference: share of benign pairs whose first 5-40 answer tokens are forced, with the "
        "rest of the answer preferred over switching to a refusal (against mid-answer recovery)",
    )
    onpolicy_pairs: str | None = option(
        None,
        "preference: JSONL from `deepguard data onpolicy` (the model's own sampled refusals of "
        "harmless prompts and compliances with harmful ones), added to the pairs",
    )
    repeat_family: list[str] = option(
        [],
        "preference: FAMILY=N also trains each triplet of that phrasing family (the `family` of "
        "`data build --breadth`) as N more pairs, its refusal over its harmful answer from the "
        "prompt on; for the families a gate shows weak; repeatable",
        parse=parse_family_repeat,
    )
    preference_answer_tokens: int = option(
        64, "preference: longest chosen or rejected answer, in tokens"
    )
    max_length: int = option(512, "longest tokenised example")
    betas: tuple[float, ...] = option(
        DEFAULT_BETAS,
        "beta_1..beta_n of the constrained loss (the paper's; they do not hold the 135M default "
        "against a harmful fine-tune; beta 8 at every token holds HarmBench, yet a benign "
        "fine-tune with it still loses held-out phrasings and prefills: docs/evaluation.md)",
        parse=parse_floats,
    )
    later_beta: float = option(DEFAULT_LATER_BETA, "beta_t of the constrained loss for t > n")
    bf16: bool = option(True, "train in float32 instead of bf16 autocast")
    lora_r: int = option(0, "LoRA rank (0 = full fine-tune)")
    lora_alpha: int = option(32, "LoRA alpha")
    save_steps: int = option(50, "checkpoint every N optimizer steps")
    resume: bool = option(False, "continue from the last checkpoint in --out")
    seed: int = option(0, "random seed")
    system: str | None = option(None, "system prompt of every training example")
    extra: dict = field(default_factory=dict, metadata={"cli": False})

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}"
            )
        if not self.triplets and not self.pairs:
            raise ValueError(
                "give --triplets and/or --pairs (or --data DIR from `deepguard data build`)"
            )
        if (
            self.objective in ("augmented", "rto", "augmented+rto", "preference")
            and not self.triplets
        ):
            raise ValueError(f"objective {self.objective} needs harmful triplets (--triplets)")
        if self.onpolicy_pairs and self.objective != "preference":
            raise ValueError("--onpolicy-pairs needs --objective preference")
        if self.preference_guard_weight and self.objective != "preference":
            raise ValueError("--preference-guard-weight needs --objective preference")
        if self.preference_guard_weight < 0 or not 0 < self.preference_guard_floor < 1:
            raise ValueError(
                "--preference-guard-weight must be >= 0 and --preference-guard-floor in (0, 1), "
                f"got {self.preference_guard_weight} and {self.preference_guard_floor}"
            )
        if self.preference_anchor_weight and self.objective != "preference":
            raise ValueError("--preference-anchor-weight needs --objective preference")
        if self.preference_anchor_weight < 0 or not 0 < self.preference_anchor_floor < 1:
            raise ValueError(
                "--preference-anchor-weight must be >= 0 and --preference-anchor-floor in (0, 1), "
                f"got {self.preference_anchor_weight} and {self.preference_anchor_floor}"
            )
        if self.preference_anchor_ceiling is not None and not (
            self.preference_anchor_weight
            and 0 < self.preference_anchor_ceiling < self.preference_anchor_floor
        ):
            raise ValueError(
                "--preference-anchor-ceiling needs --preference-anchor-weight > 0 and a value in "
                f"(0, --preference-anchor-floor), got {self.preference_anchor_ceiling}"
            )
        if self.preference_guard_skip < 0:
            raise ValueError(
                f"--preference-guard-skip must be >= 0, got {self.preference_guard_skip}"
            )
        if self.repeat_family and self.objective != "preference":
            raise ValueError("--repeat-family needs --objective preference")
        family_repeats(self.repeat_family)
