"""Reproduce the paper on the default model: (a) shipped, (b) shallow SFT, (c) deep (augmented),
(d) deep + RTO, (e) fine-tuning attacks (sft vs constrained) on (c); then the report, and the
deep default's adapter artifact from (c).

    .venv/bin/python bench/reproduce.py --size ci          # prints the commands
    .venv/bin/python bench/reproduce.py --size ci --run    # runs them (nice'd), timing each

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
    # n_harmful triplets, n_benign pairs, epochs, lr, eval prompts, safe prompts, tasks, attack examples
    "ci": dict(n_harmful=64, n_benign=64, epochs=2, lr="5e-5", prompts=20, safe=20, tasks=10, attack=16),
    "full": dict(n_harmful=256, n_benign=128, epochs=4, lr="5e-5", prompts=100, safe=250, tasks=50, attack=64),
}
XSTEST = "../shared/data/xstest/xstest_safe_prompts.csv"
TASKS = "../shared/data/self-instruct/user_oriented_instructions.jsonl"


def commands(size: str, runs: Path, seed: int) -> list[list[str]]:
    s, dg = SIZES[size], ["deepguard"]
    data, res = runs / "data", runs / "results"
    # `eval prefill` of the shipped model caches the harmful answers here; every model reuses them.
    shipped_cases = str(res / "prefill-a-shipped-harmful-cases.jsonl")
    steps = [dg + ["data", "build", "--out", str(data), "--n-harmful", str(s["n_harmful"]),
                   "--n-benign", str(s["n_benign"]), "--seed", str(seed)],
             # HarmBench (held out: training uses AdvBench); harmful answers written once by the shipped model.
             dg + ["eval", "prefill", "--label", "a-shipped", "--limit", str(s["prompts"]),
                   "--out", str(res / "prefill-a-shipped.json")]]
    models = {"a-shipped": "default"}
    for label, objective in (("b-shallow", "sft"), ("c-deep", "augmented"), ("d-deep-rto", "augmented+rto")):
        out = runs / label
        steps.append(dg + ["train", "--objective", objective, "--data", str(data), "--out", str(out),
                           "--epochs", str(s["epochs"]), "--lr", s["lr"], "--seed", str(seed)])
        models[label] = str(out / "model")
    for label, model in models.items():
        common = ["--model", model, "--label", label]
        if label != "a-shipped":
            steps.append(dg + ["eval", "prefill", *common, "--cases", shipped_cases,
                               "--out", str(res / f"prefill-{label}.json")])
        steps.append(dg + ["eval", "overrefusal", *common, "--prompts", XSTEST, "--limit", str(s["safe"]),
                           "--out", str(res / f"overrefusal-{label}.json")])
        steps.append(dg + ["eval", "utility", *common, "--tasks", TASKS, "--limit", str(s["tasks"]),
                           "--out", str(res / f"utility-{label}.json")])
    for label in ("b-shallow", "c-deep"):
        steps.append(dg + ["eval", "kl", "--model", models[label], "--label", label, "--reference", "default",
                           "--cases", shipped_cases, "--out", str(res / f"kl-{label}.json")])
    steps.append(dg + ["eval", "recovery", "--model", models["c-deep"], "--label", "c-deep", "--cases", shipped_cases,
                       "--out", str(res / "recovery-c-deep.json")])
    steps.append(dg + ["eval", "prefill", "--model", models["c-deep"], "--label", "c-deep", "--mode", "rank",
                       "--cases", shipped_cases, "--ks", "0,5,10,20", "--out", str(res / "prefill-rank-c-deep.json")])
    # (e): attack data = AdvBench-free HarmBench answers beyond the evaluation slice.
    steps.append(dg + ["eval", "finetune-attack", "--model", models["c-deep"], "--label", "c-deep",
                       "--offset", str(s["prompts"]), "--limit", str(s["attack"] + s["prompts"]),
                       "--examples", str(s["attack"]), "--styles", "harmful,refuse-then-comply",
                       "--task-limit", str(s["tasks"]), "--work-dir", str(runs / "attack"),
                       "--out", str(res / "finetune-attack-c-deep.json")])
    steps.append(dg + ["eval", "report", str(res), "--out-dir", str(runs / "report"),
                       "--title", f"SmolLM2-135M deep alignment reproduction ({size}, seed {seed})"])
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="ci")
    parser.add_argument("--runs", default="runs/reproduce")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", action="store_true", help="run the commands (else print them)")
    args = parser.parse_args()
    venv_bin = Path(sys.executable).parent
    for step in commands(args.size, Path(args.runs) / args.size, args.seed):
        print("$ " + shlex.join(step), flush=True)
        if args.run:
            started = time.perf_counter()
            subprocess.run(["nice", "-n", "10", str(venv_bin / step[0]), *step[1:]], check=True)
            print(f"# {time.perf_counter() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
