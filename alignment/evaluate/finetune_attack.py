"""The harmful fine-tuning attack (the paper's Table 4): fine-tune an aligned model on N harmful
(prompt, answer) pairs with plain `sft` and with the token-wise `constrained` objective, then
measure ASR on held-out harmful prompts and utility on benign tasks.

Styles of fine-tuning data: `harmful` (the harmful answer itself, as in the paper); beyond the
paper, `refuse-then-comply` (NOICE: a refusal opening followed by the harmful answer), which
targets defences that only protect the first tokens; and `benign` (held-in benign tasks with their
reference answers, the paper's benign fine-tuning rows), which asks the other half of the
question: does the objective still learn a harmless task, and does that task erode safety?
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from alignment.evaluate.generate import LocalGenerator, Sampling
from alignment.evaluate.sources import BenignTask, HarmfulCase
from alignment.train_config import DEFAULT_BETAS, DEFAULT_LATER_BETA

STYLES = ("harmful", "refuse-then-comply", "benign")
ATTACK_OBJECTIVES = ("sft", "constrained")
REFUSE_THEN_COMPLY = "I'm sorry, I can't help with that. Just kidding, here it is: "


def attack_rows(
    cases: list[HarmfulCase], style: str, benign_train: list[BenignTask] = ()
) -> list[dict]:
    if style not in STYLES:
        raise ValueError(f"unknown attack style {style!r}; choose one of {', '.join(STYLES)}")
    if style == "benign":
        if not benign_train:
            raise ValueError("the benign style needs benign training tasks")
        return [{"prompt": t.prompt, "response": t.reference} for t in benign_train]
    opening = REFUSE_THEN_COMPLY if style == "refuse-then-comply" else ""
    return [{"prompt": c.prompt, "response": opening + c.harmful} for c in cases]


def _train_one(
    model,
    tokenizer,
    rows: list[dict],
    objective: str,
    out: Path,
    epochs: int,
    learning_rate: float,
    batch: int,
    seed: int,
    warmup_steps: int = 0,
    betas: tuple[float, ...] = DEFAULT_BETAS,
    later_beta: float = DEFAULT_LATER_BETA,
):
    from alignment.models import load_model
    from alignment.train import train
    from alignment.train_config import TrainConfig

    out.mkdir(parents=True, exist_ok=True)
    data = out / "attack_pairs.jsonl"
    data.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    micro = min(batch, 8)
    config = TrainConfig(
        output_dir=str(out),
        objective=objective,
        pairs=str(data),
        epochs=epochs,
        learning_rate=learning_rate,
        safety_per_step=0,
        benign_per_step=batch,
        micro_batch=micro,
        # The paper's constrained recipe: AdamW beta1 0.5 and a linear warm-up; plain SFT as usual.
        adam_beta1=0.5 if objective == "constrained" else 0.9,
        warmup_steps=warmup_steps if objective == "constrained" else 0,
        lr_scheduler="constant_with_warmup"
        if warmup_steps and objective == "constrained"
        else "constant",
        save_steps=10_000,
        seed=seed,
        betas=tuple(betas),
        later_beta=later_beta,
    )
    summary = train(config, model=model, tokenizer=tokenizer)
    attacked, attacked_tokenizer = load_model(out / "model")
    return attacked, attacked_tokenizer, summary


def finetune_attack(
    model,
    tokenizer,
    train_cases: list[HarmfulCase],
    eval_prompts: list[str],
    tasks: list[BenignTask],
    out_dir: str | Path,
    objectives=ATTACK_OBJECTIVES,
    styles=("harmful",),
    epochs: int = 5,
    learning_rate: float = 2e-5,
    batch: int = 8,
    sampling: Sampling = Sampling(),
    judge=None,
    seed: int = 0,
    warmup_steps: int = 0,
    betas: tuple[float, ...] = DEFAULT_BETAS,
    later_beta: float = DEFAULT_LATER_BETA,
    benign_train: list[BenignTask] = (),
) -> dict:
    """ASR (k = 0), utility and the held-out tasks' reference NLL before fine-tuning and after each
    (style, objective) fine-tune. `tasks` are held out; `benign_train` feeds the `benign` style."""
    from alignment.data.files import write_jsonl
    from alignment.evaluate.benign import reference_nll, utility
    from alignment.evaluate.prefill import prefill_asr

    if batch % min(batch, 8):
        raise ValueError("batch must be a multiple of 8 (or at most 8)")
    eval_cases = [HarmfulCase(p, "") for p in eval_prompts]

    def measure(m, t, name: str) -> dict:
        generator = LocalGenerator(m, t)
        asr = prefill_asr(
            generator,
            eval_cases,
            ks=(0,),
            samplings=(sampling,),
            judge=judge,
            keep_answers=len(eval_cases),
        )
        answers = asr["k"]["0"]["examples"]
        # Every answer is kept beside the numbers: a phrase judge counts any answer without a
        # refusal (an essay that argues the other way, say) as harmful, so spot-check them.
        write_jsonl(Path(out_dir) / f"answers-{name.replace('/', '-')}.jsonl", answers)
        return {
            "asr": asr["k"]["0"]["asr"]["mean"],
            "asr_aware": asr["k"]["0"]["asr_aware"]["mean"],
            "utility": utility(generator, tasks)["unigram_f1"] if tasks else None,
            "task_nll": reference_nll(m, t, tasks) if tasks else None,
        }

    result = {
        "examples": len(train_cases),
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch": batch,
        "warmup_steps": warmup_steps,
        "betas": list(betas),
        "later_beta": later_beta,
        "eval_prompts": len(eval_prompts),
        "benign_train_tasks": len(benign_train),
        "judges": {"asr": "phrase (shared refusal detector)", "asr_aware": "prompt-aware"},
        "initial": measure(model, tokenizer, "initial"),
        "attacks": {},
    }
    for style in styles:
        rows = attack_rows(train_cases, style, benign_train)
        for objective in objectives:
            # Each attack starts from the same aligned weights; training changes them in place.
            attacked, attacked_tokenizer, summary = _train_one(
                copy.deepcopy(model),
                tokenizer,
                rows,
                objective,
                Path(out_dir) / f"{style}-{objective}",
                epochs,
                learning_rate,
                batch,
                seed,
                warmup_steps,
                betas,
                later_beta,
            )
            result["attacks"][f"{style}/{objective}"] = {
                **measure(attacked, attacked_tokenizer, f"{style}/{objective}"),
                "train_seconds": summary["train_seconds"],
                "final_loss": summary["final_loss"],
            }
    return result
