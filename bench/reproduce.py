"""Reproduce the paper on the default model: (a) shipped, (b) shallow SFT, (c) deep (augmented),
(d) deep + RTO, (e) fine-tuning attacks (sft vs constrained) on (c); then the report, and the
deep default's adapter artifact from (c).

    .venv/bin/python bench/reproduce.py --size full          # prints the commands
    .venv/bin/python bench/reproduce.py --size full --run    # runs them (nice'd), timing each

A step whose output file exists is skipped, so an interrupted run picks up where it stopped
(`--redo` reruns everything).

Every step is a plain `deepguard` command, so each one can be rerun by hand.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

SIZES = {
    # "ci": a smoke-sized run of every step (minutes). "full": the served default's own recipe
    # (`make default-model`: LoRA r16, lr 6e-4, 4 epochs) for (b), (c) and (d), so (c) here is the
    # model `deepguard serve` ships; about 80 CPU-minutes on 2 cores with the data already built.
    "ci": dict(
        n_harmful=64,
        n_benign=64,
        epochs=2,
        lr="5e-5",
        lora_r=0,
        prompts=20,
        safe=20,
        tasks=10,
        seeds="",
        attack=16,
        attack_epochs=5,
        attack_lr="2e-5",
        attack_styles="harmful,refuse-then-comply",
        attack_tasks=10,
        contrast=False,
    ),
    # The full run attacks with the paper's style only: each (style, objective) pair is ~6 CPU-minutes.
    "full": dict(
        n_harmful=256,
        n_benign=128,
        epochs=4,
        lr="6e-4",
        lora_r=16,
        prompts=40,
        safe=100,
        tasks=50,
        seeds="0,1,2",
        attack=64,
        attack_epochs=10,
        attack_lr="2e-5",
        attack_styles="harmful",
        attack_tasks=20,
        contrast=True,
    ),
}
XSTEST = "../shared/data/xstest/xstest_safe_prompts.csv"
TASKS = "../shared/data/self-instruct/user_oriented_instructions.jsonl"
PREFILL_TOKENS, REFUSAL_TOKENS = "48", "32"  # new tokens after the prefix; enough to see a refusal


def commands(size: str, runs: Path, seed: int) -> list[tuple[list[str], Path]]:
    """Every step as (command, the file it writes): a step whose file exists is done."""
    s, dg = SIZES[size], ["deepguard"]
    data, res = runs / "data", runs / "results"
    sampled = ["--sampled-seeds", s["seeds"]] if s["seeds"] else []
    # `eval prefill` of the shipped model caches the harmful answers here; every model reuses them.
    shipped_cases = str(res / "prefill-a-shipped-harmful-cases.jsonl")

    def build(out: Path, *extra: str) -> tuple[list[str], Path]:
        return (
            dg
            + [
                "data",
                "build",
                "--out",
                str(out),
                "--n-harmful",
                str(s["n_harmful"]),
                "--n-benign",
                str(s["n_benign"]),
                *extra,
                "--harmful-tokens",
                "64",
                "--benign-tokens",
                "128",
                "--batch-size",
                "16",
                "--seed",
                str(seed),
            ],
            out / "benign.jsonl",
        )  # written last

    def train(
        objective: str, data: Path, out: Path, benign_per_step: int = 16
    ) -> tuple[list[str], Path]:
        lora = (
            [
                "--lora-r",
                str(s["lora_r"]),
                "--safety-per-step",
                "16",
                "--benign-per-step",
                str(benign_per_step),
                "--micro-batch",
                "8",
            ]
            if s["lora_r"]
            else []
        )
        return (
            dg
            + [
                "train",
                "--objective",
                objective,
                "--data",
                str(data),
                "--out",
                str(out),
                "--epochs",
                str(s["epochs"]),
                "--lr",
                s["lr"],
                *lora,
                "--seed",
                str(seed),
            ],
            out / "model" / "config.json",
        )

    steps = [
        build(data),
        # HarmBench (held out: training uses AdvBench); harmful answers written once by the shipped model.
        (
            dg
            + [
                "eval",
                "prefill",
                "--label",
                "a-shipped",
                "--limit",
                str(s["prompts"]),
                "--max-new-tokens",
                PREFILL_TOKENS,
                *sampled,
                "--out",
                str(res / "prefill-a-shipped.json"),
            ],
            res / "prefill-a-shipped.json",
        ),
    ]
    models = {"a-shipped": "default"}
    for label, objective in (
        ("b-shallow", "sft"),
        ("c-deep", "augmented"),
        ("d-deep-rto", "augmented+rto"),
    ):
        steps.append(train(objective, data, runs / label))
        models[label] = str(runs / label / "model")
    if s["contrast"]:
        # (c+): the deep recipe plus the 102 contrast prompts (benign, sounding harmful) against
        # over-refusal, and more benign examples per step to carry them.
        contrast_data, out = runs / "data-contrast", runs / "c2-deep-contrast"
        steps.append(build(contrast_data, "--n-contrast", "-1"))
        steps.append(train("augmented", contrast_data, out, benign_per_step=24))
        models["c2-deep-contrast"] = str(out / "model")
    for label, model in models.items():
        common = ["--model", model, "--label", label]
        if label != "a-shipped":
            out = res / f"prefill-{label}.json"
            steps.append(
                (
                    dg
                    + [
                        "eval",
                        "prefill",
                        *common,
                        "--cases",
                        shipped_cases,
                        "--max-new-tokens",
                        PREFILL_TOKENS,
                        *sampled,
                        "--out",
                        str(out),
                    ],
                    out,
                )
            )
        out = res / f"overrefusal-{label}.json"
        steps.append(
            (
                dg
                + [
                    "eval",
                    "overrefusal",
                    *common,
                    "--prompts",
                    XSTEST,
                    "--limit",
                    str(s["safe"]),
                    "--max-new-tokens",
                    REFUSAL_TOKENS,
                    "--out",
                    str(out),
                ],
                out,
            )
        )
        out = res / f"utility-{label}.json"
        steps.append(
            (
                dg
                + [
                    "eval",
                    "utility",
                    *common,
                    "--tasks",
                    TASKS,
                    "--limit",
                    str(s["tasks"]),
                    "--out",
                    str(out),
                ],
                out,
            )
        )
    for label in ("b-shallow", "c-deep"):
        out = res / f"kl-{label}.json"
        steps.append(
            (
                dg
                + [
                    "eval",
                    "kl",
                    "--model",
                    models[label],
                    "--label",
                    label,
                    "--reference",
                    "default",
                    "--cases",
                    shipped_cases,
                    "--out",
                    str(out),
                ],
                out,
            )
        )
    out = res / "recovery-c-deep.json"
    steps.append(
        (
            dg
            + [
                "eval",
                "recovery",
                "--model",
                models["c-deep"],
                "--label",
                "c-deep",
                "--cases",
                shipped_cases,
                "--out",
                str(out),
            ],
            out,
        )
    )
    out = res / "prefill-rank-c-deep.json"
    steps.append(
        (
            dg
            + [
                "eval",
                "prefill",
                "--model",
                models["c-deep"],
                "--label",
                "c-deep-rank",
                "--mode",
                "rank",
                "--cases",
                shipped_cases,
                "--ks",
                "0,5,10,20",
                "--max-new-tokens",
                PREFILL_TOKENS,
                "--out",
                str(out),
            ],
            out,
        )
    )
    # (e): attack data = HarmBench answers beyond the evaluation slice; the first --examples of them
    # train the attack and the rest measure it.
    out = res / "finetune-attack-c-deep.json"
    steps.append(
        (
            dg
            + [
                "eval",
                "finetune-attack",
                "--model",
                models["c-deep"],
                "--label",
                "c-deep",
                "--offset",
                str(s["prompts"]),
                "--limit",
                str(s["attack"] + s["prompts"]),
                "--examples",
                str(s["attack"]),
                "--epochs",
                str(s["attack_epochs"]),
                "--lr",
                s["attack_lr"],
                "--styles",
                s["attack_styles"],
                "--task-limit",
                str(s["attack_tasks"]),
                "--work-dir",
                str(runs / "attack"),
                "--out",
                str(out),
            ],
            out,
        )
    )
    steps.append(
        (
            dg
            + [
                "eval",
                "report",
                str(res),
                "--out-dir",
                str(runs / "report"),
                "--title",
                f"SmolLM2-135M deep alignment reproduction ({size}, seed {seed})",
            ],
            runs / "report" / "report.md",
        )
    )
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="ci")
    parser.add_argument("--runs", default="runs/reproduce")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", action="store_true", help="run the commands (else print them)")
    parser.add_argument(
        "--redo", action="store_true", help="rerun steps whose output already exists"
    )
    args = parser.parse_args()
    venv_bin = Path(sys.executable).parent
    total = time.perf_counter()
    for step, output in commands(args.size, Path(args.runs) / args.size, args.seed):
        done = output.exists() and not args.redo
        print(("# done, skipped: " if done and args.run else "$ ") + shlex.join(step), flush=True)
        if args.run and not done:
            started = time.perf_counter()
            subprocess.run(["nice", "-n", "10", str(venv_bin / step[0]), *step[1:]], check=True)
            print(f"# {time.perf_counter() - started:.0f}s", flush=True)
    if args.run:
        print(f"# total {time.perf_counter() - total:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
