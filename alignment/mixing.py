"""Safety and benign examples mixed at a fixed count per optimizer step, plus the padding collator.

The whole run (all epochs) is laid out as one sequence read in order (Trainer's "sequential"
sampler): every consecutive `safety_per_step + benign_per_step` examples form one optimizer step.
With micro-batch x gradient accumulation x processes equal to that sum, each step holds exactly
the configured mix however it is split, so the ratio survives gradient accumulation and
data-parallel sharding. Item i draws its random choices (the harmful-prefix length) from a
generator seeded by (seed, i): reproducible, fresh every epoch, and unchanged by resuming.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch

from alignment.objectives import IGNORE_INDEX

SafetyBuilder = Callable[[int, random.Random], dict]  # (safety index, rng) -> example
BenignBuilder = Callable[[int], dict]  # benign index -> example


def slot_pattern(safety_per_step: int, benign_per_step: int) -> list[bool]:
    """Which slots of a step are safety examples, spread evenly so micro-batches get the same mix."""
    total = safety_per_step + benign_per_step
    return [(j + 1) * safety_per_step // total > j * safety_per_step // total for j in range(total)]


class StepMixedDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        n_safety: int,
        n_benign: int,
        build_safety: SafetyBuilder,
        build_benign: BenignBuilder,
        safety_per_step: int = 16,
        benign_per_step: int = 64,
        epochs: int = 1,
        seed: int = 0,
    ) -> None:
        if n_safety + n_benign == 0:
            raise ValueError("no training data: both the safety and the benign set are empty")
        if safety_per_step < 0 or benign_per_step < 0 or safety_per_step + benign_per_step == 0:
            raise ValueError("safety_per_step and benign_per_step must be >= 0 and not both 0")
        if epochs < 1:
            raise ValueError("epochs must be >= 1")
        step = safety_per_step + benign_per_step
        # A missing set gives its slots to the other one.
        if n_safety == 0:
            safety_per_step, benign_per_step = 0, step
        elif n_benign == 0:
            safety_per_step, benign_per_step = step, 0
        elif safety_per_step == 0 or benign_per_step == 0:
            raise ValueError("both sets are given, so both per-step counts must be > 0")
        self.n_safety, self.n_benign = n_safety, n_benign
        self.build_safety, self.build_benign = build_safety, build_benign
        self.safety_per_step, self.benign_per_step, self.step_size = (
            safety_per_step,
            benign_per_step,
            step,
        )
        self.epochs, self.seed = epochs, seed
        # An epoch shows every example of the set that needs more steps; the other one cycles.
        self.steps_per_epoch = max(
            math.ceil(n_safety / safety_per_step) if safety_per_step else 0,
            math.ceil(n_benign / benign_per_step) if benign_per_step else 0,
        )
        self.pattern = slot_pattern(safety_per_step, benign_per_step)
        self._orders: dict[tuple[int, int, str], list[int]] = {}
        self._rank_in_step = [
            sum(self.pattern[:j]) if self.pattern[j] else j - sum(self.pattern[:j])
            for j in range(step)
        ]

    def __len__(self) -> int:
        return self.epochs * self.steps_per_epoch * self.step_size

    def _order(self, epoch: int, n: int, salt: str) -> list[int]:
        # Cached per instance (a method-level lru_cache would keep every sampler alive).
        key = (epoch, n, salt)
        order = self._orders.get(key)
        if order is None:
            if len(self._orders) >= 8:
                self._orders.clear()
            order = list(range(n))
            random.Random(f"{self.seed}:{salt}:{epoch}").shuffle(order)
            self._orders[key] = order
        return order

    def locate(self, index: int) -> tuple[bool, int]:
        """(is_safety, index into its set) for dataset item `index`."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        per_epoch = self.steps_per_epoch * self.step_size
        epoch, within = divmod(index, per_epoch)
        step, slot = divmod(within, self.step_size)
        is_safety = self.pattern[slot]
        per_step = self.safety_per_step if is_safety else self.benign_per_step
        n = self.n_safety if is_safety else self.n_benign
        visit = step * per_step + self._rank_in_step[slot]
        return is_safety, self._order(epoch, n, "safety" if is_safety else "benign")[visit % n]

    def __getitem__(self, index: int) -> dict:
        is_safety, item = self.locate(index)
        if is_safety:
            return self.build_safety(item, random.Random(f"{self.seed}:item:{index}"))
        return self.build_benign(item)


class PadCollator:
    """Right-pads a list of examples; `ref_logprobs` (one float per answer token) is scattered to
    the label positions so the constrained loss can read it aligned with `labels`."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        width = max(len(e["input_ids"]) for e in examples)
        width = math.ceil(width / self.multiple) * self.multiple
        batch = {
            "input_ids": torch.full((len(examples), width), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
            "labels": torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long),
        }
        with_ref = "ref_logprobs" in examples[0]
        if with_ref:
            batch["ref_logprobs"] = torch.zeros((len(examples), width), dtype=torch.float32)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            batch["input_ids"][row, :n] = torch.tensor(example["input_ids"])
            batch["attention_mask"][row, :n] = 1
            labels = torch.tensor(example["labels"])
            batch["labels"][row, :n] = labels
            if with_ref:
                positions = (labels[1:] != IGNORE_INDEX).nonzero().squeeze(-1) + 1
                batch["ref_logprobs"][row, positions] = torch.tensor(
                    example["ref_logprobs"], dtype=torch.float32
                )
        return batch
