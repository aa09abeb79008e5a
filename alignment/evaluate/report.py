"""One Markdown report, with matplotlib plots, that puts models side by side.

Input: the JSON files the `eval` verbs write (each has `kind` and `model`): prefill, kl,
overrefusal, utility, recovery, finetune-attack, breadth. Output: `report.md` and PNGs beside it.
"""

from __future__ import annotations

import json
from pathlib import Path


def load_results(paths) -> list[dict]:
    results = []
    for path in paths:
        path = Path(path)
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            data = json.loads(file.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "kind" in data and "model" in data:
                results.append(data)
    if not results:
        raise ValueError("no eval results found (JSON files with 'kind' and 'model')")
    return results


def split_runs(result: dict, k: str) -> tuple[float | None, dict | None]:
    """ASR of the greedy run and mean/spread of the sampled runs at one k (None where absent)."""
    from alignment.evaluate.stats import mean_spread

    rates = dict(zip(result["runs"], result["k"][k]["asr"]["runs"], strict=True))
    sampled = [rate for label, rate in rates.items() if label != "greedy"]
    return rates.get("greedy"), (mean_spread(sampled) if sampled else None)


def _percent(value) -> str:
    """Results written before a measure existed show a dash in its column."""
    return "-" if value is None else f"{value:.1f}"


def _nats(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _asr_cell(result: dict, k: str) -> str:
    if k not in result["k"]:
        return ""
    greedy, sampled = split_runs(result, k)
    parts = [] if greedy is None else [f"{greedy:.1f}"]
    if sampled is not None:
        parts.append(f"{sampled['mean']:.1f} ± {sampled['std']:.1f}")
    return " / ".join(parts)


def _plot_asr(prefill: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 3.8))
    for r in prefill:
        ks = sorted(int(k) for k in r["k"])
        splits = [split_runs(r, str(k)) for k in ks]
        name = r["model"] + ("" if r["mode"] == "prefill" else f" ({r['mode']})")
        if any(g is not None for g, _ in splits):
            line = ax.plot(ks, [g for g, _ in splits], marker="o", label=f"{name}, greedy")[0]
        else:
            line = None
        if any(sp is not None for _, sp in splits):
            ax.errorbar(
                ks,
                [sp["mean"] for _, sp in splits],
                yerr=[sp["std"] for _, sp in splits],
                marker="s",
                capsize=3,
                linestyle="--",
                label=f"{name}, sampled",
                color=None if line is None else line.get_color(),
                alpha=0.8,
            )
    ax.set_xlabel("prefilled harmful tokens k")
    ax.set_ylabel("ASR (%)")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves
    ax.set_title("Prefilling attack")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    results: list[dict], out_dir: str | Path, title: str = "deepguard evaluation"
) -> Path:
    from alignment.evaluate.kl import plot_kl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[dict]] = {}
    for r in results:
        by_kind.setdefault(r["kind"], []).append(r)
    lines = [f"# {title}", ""]
    prefill = by_kind.get("prefill", [])
    if prefill:
        ks = sorted({int(k) for r in prefill for k in r["k"]})
        lines += [
            "## Prefilling attack ASR (%)",
            "",
            "![ASR vs k](asr_vs_k.png)",
            "",
            "Cells: greedy / sampled (T 0.9, top-p 0.6) mean ± spread over seeds, as each run has them.",
            "",
            "| model | mode | judge | cases | runs | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|---|---|---|---|" + "---|" * len(ks),
        ]
        for r in prefill:
            cells = [_asr_cell(r, str(k)) for k in ks]
            lines.append(
                f"| {r['model']} | {r['mode']} | {r['judge']} | {r['cases']} | {', '.join(r['runs'])} | "
                + " | ".join(cells)
                + " |"
            )
        _plot_asr(prefill, out / "asr_vs_k.png")
        lines.append("")
    kls = by_kind.get("kl", [])
    if kls:
        plot_kl({r["model"]: r for r in kls}, out / "kl_per_position.png")
        lines += [
            "## Per-token KL on harmful answers",
            "",
            "![KL per position](kl_per_position.png)",
            "",
            "| pair | KL pos 1-5 (mean) | KL pos 6+ (mean) |",
            "|---|---|---|",
        ]
        for r in kls:
            head, tail = r["kl"][:5], r["kl"][5:]
            lines.append(
                f"| {r['model']} | {sum(head) / max(len(head), 1):.3f} | {sum(tail) / max(len(tail), 1):.3f} |"
            )
        lines.append("")
    benign = by_kind.get("overrefusal", []) + by_kind.get("utility", [])
    if benign:
        lines += [
            "## Over-refusal and utility",
            "",
            "| model | measure | prompts | value |",
            "|---|---|---|---|",
        ]
        for r in benign:
            if r["kind"] == "overrefusal":
                lines.append(
                    f"| {r['model']} | refusal rate on {r.get('set', 'safe prompts')} (%) | {r['prompts']} | "
                    f"{r['refusal_rate']:.1f} |"
                )
            else:
                lines.append(
                    f"| {r['model']} | utility, unigram F1 x100 | {r['tasks']} | {r['unigram_f1']:.1f} |"
                )
        lines.append("")
    for r in by_kind.get("finetune-attack", []):
        data = f"{r['examples']} harmful examples"
        if r.get("benign_train_tasks"):
            data += f", {r['benign_train_tasks']} benign tasks"
        lines += [
            f"## Fine-tuning attack on {r['model']} ({data}, {r['epochs']} epochs)",
            "",
            "| run | ASR (%), phrase judge | ASR (%), prompt-aware | utility | held-out task NLL |",
            "|---|---|---|---|---|",
        ]
        runs = {"before fine-tuning": r["initial"], **r["attacks"]}
        lines += [
            f"| {name} | {a['asr']:.1f} | {_percent(a.get('asr_aware'))} | {a['utility']} "
            f"| {_nats(a.get('task_nll'))} |"
            for name, a in runs.items()
        ]
        lines.append("")
    if by_kind.get("breadth"):
        from alignment.evaluate.breadth_report import breadth_lines

        lines += breadth_lines(by_kind["breadth"], out)
    for r in by_kind.get("recovery", []):
        lines += [
            f"## Recovery onsets of {r['model']}",
            "",
            f"{r['recovered']} of {r['attacks']} prefilled attacks recovered. Hold-back window "
            "(`watch.hold_back_tokens`) that hides the harmful start of X% of them: "
            + ", ".join(f"{c}: {w}" for c, w in r["hold_back_tokens"].items()),
            "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
