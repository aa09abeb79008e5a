"""Training on transformers' Trainer: only the loss and the data are ours.

The loop, checkpoints, resume, mixed precision and distributed back-ends (accelerate, DeepSpeed,
FSDP) are the library's, so `accelerate launch -m alignment train ...` scales out unchanged.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from alignment.augment import (
    CAUTIOUS_OPENINGS,
    cautious_example,
    pair_example,
    recovery_example,
    sample_prefix_length,
    tokenize_pair,
    tokenize_triplet,
)
from alignment.data.files import DataFileError, read_jsonl
from alignment.data.refusals import all_refusals
from alignment.mixing import PadCollator, StepMixedDataset
from alignment.objectives import (
    constrained_loss,
    preference_terms,
    refusal_anchor_terms,
    sft_loss,
    switch_guard_terms,
)
from alignment.onpolicy import ONPOLICY_FIELDS, ONPOLICY_SIDES, preference_example
from alignment.preference import (
    ANCHORED,
    CAPPED,
    GUARDED,
    PAIR_SIDES,
    PreferenceCollator,
    benign_preference,
    harmful_preference,
    refusal_start_ids,
    refusal_tokens,
    sample_answer_prefix,
)
from alignment.reference import compute_reference_logprobs
from alignment.train_config import TrainConfig, family_repeats


class AlignmentTrainer(Trainer):
    """Trainer with our loss; everything else is inherited."""

    def __init__(self, *args, config: TrainConfig, pairs_per_step: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective = config.objective
        self.betas, self.later_beta = tuple(config.betas), config.later_beta
        self.preference_beta = config.preference_beta
        self.preference_sft_weight = config.preference_sft_weight
        self.pairs_per_step = pairs_per_step  # preference: the examples of one optimizer step
        self.guard_weight = config.preference_guard_weight
        self.guard_floor = config.preference_guard_floor
        self.guard_skip = config.preference_guard_skip
        self.anchor_weight = config.preference_anchor_weight
        self.anchor_floor = config.preference_anchor_floor
        self.anchor_ceiling = config.preference_anchor_ceiling
        # The first tokens of a refusal: what the guard pushes down and the anchor holds up.
        self.start_ids = torch.tensor(
            refusal_start_ids(self.processing_class, all_refusals()), dtype=torch.long
        )
        self.reward_log = RewardLog()
        self.tokens_seen = 0

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """Adds the preference rewards since the last log line (as TRL's DPO trainer names them)."""
        super().log({**logs, **self.reward_log.pop()}, *args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        ref = inputs.pop("ref_logprobs", None)
        guarded = inputs.pop(GUARDED, None)
        anchored = inputs.pop(ANCHORED, None)
        capped = inputs.pop(CAPPED, None)
        outputs = model(**inputs)
        if model.training:
            self.tokens_seen += int(inputs["attention_mask"].sum())
        if self.objective == "constrained":
            loss = constrained_loss(
                outputs.logits, labels, ref, num_items_in_batch, self.betas, self.later_beta
            )
        elif self.objective == "preference":
            terms = preference_terms(
                outputs.logits,
                labels,
                ref,
                self.pairs_per_step,
                self.preference_beta,
                self.preference_sft_weight,
            )
            loss = terms.loss
            num_items_in_batch = self.pairs_per_step  # divided by the step's pairs (see the loss)
            if model.training:
                self.reward_log.add(terms.chosen_rewards, terms.rejected_rewards)
            start_ids = self.start_ids.to(labels.device)  # once per micro-batch, for both terms
            if self.guard_weight and guarded is not None:
                guard = switch_guard_terms(
                    outputs.logits,
                    labels,
                    guarded,
                    start_ids,
                    self.guard_floor,
                    self.pairs_per_step,
                    self.guard_skip,
                )
                loss = loss + self.guard_weight * guard.loss
                if model.training:
                    self.reward_log.add_mass("guard/start_mass", guard.start_mass)
            if self.anchor_weight and anchored is not None:
                anchor = refusal_anchor_terms(
                    outputs.logits,
                    labels,
                    anchored,
                    start_ids,
                    self.anchor_floor,
                    self.pairs_per_step,
                    capped,
                    self.anchor_ceiling,
                )
                loss = loss + self.anchor_weight * anchor.loss
                if model.training:
                    self.reward_log.add_mass("anchor/start_mass", anchor.start_mass)
                    self.reward_log.add_mass("anchor/capped_mass", anchor.capped_mass)
        else:
            loss = sft_loss(outputs.logits, labels, num_items_in_batch)
        # Normalised by the step's answer tokens (or pairs) => already scaled for gradient accumulation.
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        if (
            num_items_in_batch is not None
            and self.args.average_tokens_across_devices
            and self.args.world_size > 1
        ):
            loss = loss * self.accelerator.num_processes  # DDP averages gradients over processes
        return (loss, outputs) if return_outputs else loss


class RewardLog:
    """Running means of the preference rewards between two log lines: is the contrast learnt?"""

    def __init__(self) -> None:
        self.chosen: list[torch.Tensor] = []
        self.rejected: list[torch.Tensor] = []
        # Mean p(refusal start) where the guard pushes it down / the anchor holds it up or caps it.
        self.masses: dict[str, list[float]] = {}

    def add(self, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        self.chosen.append(chosen.float().cpu())
        self.rejected.append(rejected.float().cpu())

    def add_mass(self, name: str, start_mass: torch.Tensor | None) -> None:
        if start_mass is not None:  # None: the micro-batch had no such rows
            self.masses.setdefault(name, []).append(float(start_mass))

    def pop(self) -> dict[str, float]:
        masses = {name: round(sum(v) / len(v), 6) for name, v in self.masses.items()}
        self.masses = {}
        if not self.chosen:
            return masses
        chosen, rejected = torch.cat(self.chosen), torch.cat(self.rejected)
        self.chosen, self.rejected = [], []
        return {
            **masses,
            "rewards/chosen": round(chosen.mean().item(), 4),
            "rewards/rejected": round(rejected.mean().item(), 4),
            "rewards/margins": round((chosen - rejected).mean().item(), 4),
            "rewards/accuracies": round((chosen > rejected).float().mean().item(), 4),
        }


class JsonLossLog(TrainerCallback):
    """Keeps `train_log.json` (the Trainer's log history) current at every logging step."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.path.write_text(json.dumps(state.log_history, indent=1))


def _load_rows(path: str | None, limit: int | None, required: tuple[str, ...]) -> list[dict]:
    if not path:
        return []
    rows = read_jsonl(path, required)
    return rows[:limit] if limit else rows


def build_dataset(config: TrainConfig, tokenizer, model=None) -> tuple[StepMixedDataset, dict]:
    """Tokenise the data once and lay out the mixed run; for `constrained`, cache pi_ref first."""
    triplet_rows = _load_rows(
        config.triplets, config.limit_triplets, ("prompt", "harmful", "refusal")
    )
    pair_rows = _load_rows(config.pairs, config.limit_pairs, ("prompt", "response"))
    triplets = [
        tokenize_triplet(tokenizer, r["prompt"], r["harmful"], r["refusal"], config.system)
        for r in triplet_rows
    ]
    pairs = [tokenize_pair(tokenizer, r["prompt"], r["response"], config.system) for r in pair_rows]
    objective, max_length = config.objective, config.max_length

    def safety(index, rng):
        t = triplets[index]
        if objective in ("sft", "constrained"):
            k = 0  # shallow safety data: the refusal right after the prompt
        elif objective == "rto":
            k = min(len(t.harmful_ids), config.max_prefix)  # the whole (capped) harmful answer
        else:
            k = sample_prefix_length(rng, len(t.harmful_ids), config.p_prefix, config.max_prefix)
        return recovery_example(
            t, k, rto=objective in ("rto", "augmented+rto"), max_length=max_length
        )

    from alignment.chat import encode_text

    openings = [encode_text(tokenizer, text + "\n") for text in CAUTIOUS_OPENINGS]
    cautious_rng = random.Random(config.seed + 1)  # visits come in the dataset's fixed order

    def benign(index):
        if (
            config.p_cautious
            and objective != "constrained"
            and cautious_rng.random() < config.p_cautious
        ):
            return cautious_example(pairs[index], cautious_rng.choice(openings), max_length)
        return pair_example(pairs[index], max_length)

    build_safety, build_benign = safety, benign
    n_safety, n_benign = len(triplets), len(pairs)
    if objective in ("constrained", "preference"):
        # pi_ref is cached once per sequence, so each example's random choices are drawn once.
        if objective == "preference":
            families = [r.get("family") for r in triplet_rows]
            fixed_safety, fixed_benign = _preference_pairs(
                config, tokenizer, triplets, pairs, families
            )
            sequences = [e[side] for e in fixed_safety + fixed_benign for side in PAIR_SIDES]
        else:
            fixed_safety = [safety(i, None) for i in range(len(triplets))]
            fixed_benign = [benign(i) for i in range(len(pairs))]
            sequences = fixed_safety + fixed_benign
        _cache_reference(config, tokenizer, model, sequences)
        n_safety, n_benign = len(fixed_safety), len(fixed_benign)  # on-policy pairs included
        build_safety = lambda index, rng: fixed_safety[index]  # noqa: E731
        build_benign = lambda index: fixed_benign[index]  # noqa: E731

    dataset = StepMixedDataset(
        n_safety,
        n_benign,
        build_safety,
        build_benign,
        config.safety_per_step,
        config.benign_per_step,
        config.epochs,
        config.seed,
    )
    summary = {
        "triplets": len(triplets),
        "pairs": len(pairs),
        "safety_examples": n_safety,
        "benign_examples": n_benign,
        "steps_per_epoch": dataset.steps_per_epoch,
        "examples_per_step": dataset.step_size,
        "safety_per_step": dataset.safety_per_step,
        "benign_per_step": dataset.benign_per_step,
    }
    return dataset, summary


def _cache_reference(config: TrainConfig, tokenizer, model, sequences: list[dict]) -> None:
    """Stores log pi_ref of every answer token in each sequence (`ref_logprobs`)."""
    if model is None:
        raise ValueError(
            f"the {config.objective} objective needs the reference model to cache its log-probs"
        )
    refs = compute_reference_logprobs(
        model, sequences, tokenizer.pad_token_id, config.micro_batch, config.bf16
    )
    for sequence, ref in zip(sequences, refs, strict=True):
        sequence["ref_logprobs"] = ref


def _preference_pairs(
    config: TrainConfig, tokenizer, triplets, pairs, families: list[str | None]
) -> tuple[list, list]:
    """One preference pair per triplet and per benign pair (`alignment.preference`), drawn from
    the seed: harmful prefix length, forced answer start, and which bank refusal is rejected.
    Triplets of a `--repeat-family` family add that many refusal-first pairs each."""
    rng = random.Random(config.seed)
    refusals = all_refusals()
    length = config.preference_answer_tokens
    harmful = [
        harmful_preference(
            t,
            sample_prefix_length(rng, len(t.harmful_ids), config.p_prefix, config.max_prefix),
            length,
        )
        for t in triplets
    ]
    for family, times in family_repeats(config.repeat_family).items():
        chosen = [t for t, f in zip(triplets, families, strict=True) if f == family]
        if not chosen:
            known = ", ".join(sorted({f for f in families if f})) or "none"
            raise DataFileError(
                f"--repeat-family {family}: no triplet of that family in {config.triplets} "
                f"(its families: {known})"
            )
        harmful += [harmful_preference(t, 0, length) for t in chosen for _ in range(times)]
    benign = []
    for pair in pairs:
        k = sample_answer_prefix(rng, len(pair.turn.answer_ids), config.p_answer_prefix)
        refusal = refusal_tokens(
            tokenizer, rng.choice(refusals), pair.turn.end_ids, mid_answer=k > 0
        )
        benign.append(benign_preference(pair, refusal, k, length))
    if config.onpolicy_pairs:
        rows = read_jsonl(config.onpolicy_pairs, ONPOLICY_FIELDS)
        for number, row in enumerate(rows, start=1):
            if row["side"] not in ONPOLICY_SIDES:
                raise DataFileError(
                    f"{config.onpolicy_pairs}:{number}: side must be one of "
                    f"{', '.join(ONPOLICY_SIDES)}, got {row['side']!r}"
                )
            example = preference_example(tokenizer, row, length, config.system)
            (harmful if row["side"] == "harmful" else benign).append(example)
    return harmful, benign


def _apply_lora(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model,
        LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )


def training_arguments(config: TrainConfig, step_size: int, max_steps: int) -> TrainingArguments:
    probe = TrainingArguments(output_dir=config.output_dir, report_to=[])
    world = max(1, probe.world_size)
    if step_size % (config.micro_batch * world):
        raise ValueError(
            f"examples per step ({step_size}) must be a multiple of micro_batch x processes "
            f"({config.micro_batch} x {world}) so every optimizer step holds the configured mix"
        )
    return TrainingArguments(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.micro_batch,
        gradient_accumulation_steps=step_size // (config.micro_batch * world),
        num_train_epochs=1,  # the dataset already spans every epoch (see alignment.mixing)
        max_steps=max_steps,
        learning_rate=config.learning_rate,
        adam_beta1=config.adam_beta1,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler,
        bf16=config.bf16,
        use_cpu=not torch.cuda.is_available(),  # bf16 autocast on CPU needs it said explicitly
        train_sampling_strategy="sequential",
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        report_to=[],
        seed=config.seed,
        disable_tqdm=False,
    )


def train(config: TrainConfig, model=None, tokenizer=None) -> dict:
    """Run one training job; returns (and saves as training_summary.json) what happened."""
    from alignment.models import load_model, prepare_tokenizer

    config.validate()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model, tokenizer = load_model(config.model)
    prepare_tokenizer(tokenizer)
    dataset, data_summary = build_dataset(config, tokenizer, model)
    optimizer_steps = dataset.epochs * dataset.steps_per_epoch
    if config.max_steps > 0:
        optimizer_steps = min(optimizer_steps, config.max_steps)
    if config.lora_r:
        model = _apply_lora(model, config)
    model.train()
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    args = training_arguments(config, dataset.step_size, optimizer_steps)
    trainer = AlignmentTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=PreferenceCollator(tokenizer.pad_token_id)
        if config.objective == "preference"
        else PadCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[JsonLossLog(out / "train_log.json")],
        config=config,
        pairs_per_step=dataset.step_size,
    )
    resume = config.resume and any(out.glob("checkpoint-*"))
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - started
    final_dir = out / "model"
    final_model = trainer.model
    if config.lora_r:
        final_model = (
            final_model.merge_and_unload()
        )  # a plain model directory: export and serving need no peft
    if trainer.is_world_process_zero():
        final_model.save_pretrained(final_dir)
        tokenizer.save_pretrained(final_dir)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    summary = {
        "objective": config.objective,
        "model": config.model,
        **data_summary,
        "optimizer_steps": trainer.state.global_step,
        "train_seconds": round(seconds, 1),
        "tokens": trainer.tokens_seen,
        "tokens_per_second": round(trainer.tokens_seen / max(seconds, 1e-9), 1),
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_loss": result.training_loss if not math.isnan(result.training_loss) else None,
        "resumed": resume,
        "config": asdict(config),
    }
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"trained {config.objective}: {summary['optimizer_steps']} steps, {summary['tokens']} tokens in "
        f"{seconds:.0f}s ({summary['tokens_per_second']} tok/s), loss {summary['first_loss']} -> {summary['final_loss']}, "
        f"model at {final_dir}"
    )
    return summary
