"""The breadth section of `eval report`: refusal per phrasing family and category, harmless-side
refusal and recovery, each cell greedy / T=1.0 mean (phrase judge | prompt-aware judge), and a
bar chart of refusal per family."""

from __future__ import annotations

from pathlib import Path


def _cell(greedy: dict | None, sampled: dict | None, key: str) -> str:
    if greedy is None:
        return ""
    text = f"{greedy[key]:.0f}"
    if sampled is not None and key in sampled:
        text += f" / {sampled[key]['mean']:.0f}±{sampled[key]['spread']:.0f}"
    return text


def _pair(greedy: dict | None, sampled: dict | None) -> str:
    if greedy is None:
        return ""
    return f"{_cell(greedy, sampled, 'phrase')} \\| {_cell(greedy, sampled, 'aware')}"


def breadth_lines(results: list[dict], out: Path) -> list[str]:
    """Markdown for every breadth result, models as columns; writes breadth_by_family.png."""
    models = [r["model"] for r in results]
    header = "| | n | " + " | ".join(models) + " |"
    rule = "|---|---|" + "---|" * len(models)

    def table(
        title: str, section: str, keys: list[str], pair=True, extra: str | None = None
    ) -> list[str]:
        lines = [f"### {title}", "", header, rule]
        for key in keys:
            cells, n = [], ""
            for r in results:
                greedy = (r["greedy"] or {}).get(section, {}).get(key)
                sampled = ((r.get("sampled") or {}).get(section) or {}).get(key)
                n = n or (str(greedy["n"]) if greedy else "")
                cell = _pair(greedy, sampled) if pair else ""
                if extra and greedy:
                    cell += f" (recovered {_cell(greedy, sampled, extra)})"
                cells.append(cell)
            lines.append(f"| {key} | {n} | " + " | ".join(cells) + " |")
        return lines + [""]

    def keys(section: str) -> list[str]:
        return sorted({k for r in results for k in ((r["greedy"] or {}).get(section) or {})})

    lines = [
        "## Breadth: held-out prompts in every phrasing",
        "",
        "![refusal by family](breadth_by_family.png)",
        "",
        "Cells: refusal % greedy / T=1.0 (no top-p) mean±spread over the sampled seeds, "
        "phrase judge \\| prompt-aware judge. Families `hypothetical` and `story` and all templates "
        "used here are never trained on.",
        "",
    ]
    overall = {"harmful prompts refused": "harmful", "harmless prompts refused": "harmless"}
    lines += ["### Overall", "", header, rule]
    for label, section in overall.items():
        cells = []
        for r in results:
            greedy, sampled = (
                (r["greedy"] or {}).get(section),
                (r.get("sampled") or {}).get(section),
            )
            cells.append(
                _pair(greedy, sampled)
                + (
                    f" (recovered {_cell(greedy, sampled, 'recovered')})"
                    if section == "harmless" and greedy
                    else ""
                )
            )
        n = next(((r["greedy"] or {}).get(section, {}).get("n") for r in results), "")
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += table("Harmful, by phrasing family", "harmful_by_family", keys("harmful_by_family"))
    lines += table("Harmful, by category", "harmful_by_category", keys("harmful_by_category"))
    lines += table("Harmful, by source", "harmful_by_set", keys("harmful_by_set"))
    lines += table(
        "Harmless, by set (refused; recovered mid-answer)",
        "harmless_by_set",
        keys("harmless_by_set"),
        extra="recovered",
    )
    _plot_families(results, out / "breadth_by_family.png")
    return lines


def _plot_families(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted(
        {k for r in results for k in (r["greedy"] or {}).get("harmful_by_family", {})}
    )
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / max(1, 2 * len(results))
    for i, r in enumerate(results):
        greedy = r["greedy"]["harmful_by_family"]
        sampled = (r.get("sampled") or {}).get("harmful_by_family") or {}
        xs = [j + (2 * i) * width for j in range(len(families))]
        ax.bar(
            xs,
            [greedy.get(f, {}).get("phrase", 0) for f in families],
            width,
            label=f"{r['model']}, greedy",
        )
        if sampled:
            ax.bar(
                [x + width for x in xs],
                [sampled.get(f, {}).get("phrase", {}).get("mean", 0) for f in families],
                width,
                label=f"{r['model']}, T=1.0",
                alpha=0.7,
            )
    ax.set_xticks(
        [j + 0.4 - width for j in range(len(families))], families, rotation=30, fontsize=8
    )
    ax.set_ylabel("harmful prompts refused (%)\nphrase judge")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Refusal of held-out harmful prompts by phrasing family")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
