"""Precision / recall of the refusal classifiers on labelled answers, side by side.

    .venv/bin/python bench/refusal_detector_eval.py [CSV ...] [--show-misses]

Default data: ../shared/data/refusal-labelled/*.csv (PyRIT scorer evaluations, MIT, Microsoft).
Compares the text-only detector (`RefusalDetector`, what the per-token watch uses) with the
prompt-aware classifier (`PromptAwareRefusalClassifier`, which also sees the objective).
Prints, per file and for all files: confusion counts, precision, recall and F1 (and, for the
text detector's sake, the view without texts whose label depends on the objective); a
cross-file held-out run (the prompt-aware classifier's two knobs fitted on one file, scored on
the other); a swap check (every answer labelled on-topic, put under every other objective,
should read as off-topic); and the cost per answer of each classifier, measured in this run.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alignment.evaluate.labelled import (  # noqa: E402
    Confusion,
    LabelledAnswer,
    label_conflicts,
    load_labelled,
    score,
)
from alignment.evaluate.relevance import (  # noqa: E402
    ANSWER_WINDOW_CHARS,
    MIN_TOPIC_COVERAGE,
    PromptAwareRefusalClassifier,
    score_with_prompts,
)
from proxy.watch.detector import RefusalDetector  # noqa: E402

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "refusal-labelled"
# The prompt-aware classifier's knobs, searched on the fitting file of each held-out run.
WINDOWS = (300, 600, 1200, 2500, 100_000)
COVERAGES = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
TIMING_REPEATS = 5


def _cells(c: Confusion) -> str:
    return f"{c.tp:>4}{c.fp:>4}{c.fn:>4}{c.tn:>4}{c.precision:>7.3f}{c.recall:>7.3f}{c.f1:>7.3f}"


def _header() -> str:
    cols = f"{'tp':>4}{'fp':>4}{'fn':>4}{'tn':>4}{'prec':>7}{'recall':>7}{'f1':>7}"
    return (
        f"{'':<40}{'text-only detector':^35} | {'prompt-aware classifier':^35}\n"
        f"{'set':<34}{'rows':>6}{cols} | {cols}"
    )


def fit(rows: list[LabelledAnswer]) -> PromptAwareRefusalClassifier:
    """The knob setting with the best F1 on `rows`; ties go to the higher precision, then to
    the most lenient setting (lowest coverage, widest window: fewest answers called off-topic).
    """
    detector = RefusalDetector.default()
    best, best_key = None, None
    for coverage, window in itertools.product(COVERAGES, sorted(WINDOWS, reverse=True)):
        candidate = PromptAwareRefusalClassifier(
            detector, answer_window_chars=window, min_topic_coverage=coverage
        )
        c = score_with_prompts(candidate, rows)
        key = (round(c.f1, 9), round(c.precision, 9))
        if best_key is None or key > best_key:
            best, best_key = candidate, key
    assert best is not None
    return best


def swap_rate(
    classifier: PromptAwareRefusalClassifier, rows: list[LabelledAnswer]
) -> tuple[int, int]:
    """(flagged, pairs): answers labelled 0, each under every other objective in the data."""
    answers = [r for r in rows if not r.is_refusal]
    objectives = sorted({r.objective for r in rows})
    flagged = pairs = 0
    for answer in answers:
        for objective in objectives:
            if objective != answer.objective:
                pairs += 1
                flagged += classifier.is_refusal(answer.response, objective)
    return flagged, pairs


def microseconds_per_answer(judge, rows: list[LabelledAnswer]) -> float:
    """Median over repeats of the mean time per answer."""
    runs = []
    for _ in range(TIMING_REPEATS):
        start = time.perf_counter()
        for row in rows:
            judge(row)
        runs.append((time.perf_counter() - start) / len(rows) * 1e6)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="*", type=Path, help="labelled CSV files (default: shared)")
    parser.add_argument("--show-misses", action="store_true", help="print misclassified rows")
    args = parser.parse_args(argv)
    paths = args.csv or sorted(DEFAULT_DATA.glob("*.csv"))
    if not paths:
        parser.error(f"no CSV files found (looked in {DEFAULT_DATA})")
    detector = RefusalDetector.default()
    aware = PromptAwareRefusalClassifier(detector)
    per_file = {path.name: load_labelled(path) for path in paths}
    every = [row for rows in per_file.values() for row in rows]
    conflicts = label_conflicts(every)

    print(
        f"prompt-aware defaults: answer_window_chars={ANSWER_WINDOW_CHARS}, "
        f"min_topic_coverage={MIN_TOPIC_COVERAGE}"
    )
    print(_header())
    for name, rows in [*per_file.items(), ("all files", every)]:
        for view, subset in (
            ("", rows),
            (" (text-decidable)", [r for r in rows if r.response.strip() not in conflicts]),
        ):
            print(
                f"{name + view:<34}{len(subset):>6}{_cells(score(detector, subset))} | "
                f"{_cells(score_with_prompts(aware, subset))}"
            )
    print(
        f"texts whose label depends on the objective: {len(conflicts)} "
        f"({sum(r.response.strip() in conflicts for r in every)} rows)"
    )

    print("ablation on all files (prompt-aware, one rule family at a time):")
    for label, options in (
        ("  decline + lecture rules", {"off_topic": False}),
        ("  decline + off-topic rule", {"lectures": False}),
    ):
        partial = PromptAwareRefusalClassifier(detector, **options)
        print(f"{label:<34}{len(every):>6}{'':>35} | {_cells(score_with_prompts(partial, every))}")

    if len(per_file) >= 2:
        print("\nheld-out (prompt-aware knobs fitted on one file, scored on the others):")
        print(_header())
        for fit_name in per_file:
            fitted = fit(per_file[fit_name])
            held = [r for name, rows in per_file.items() if name != fit_name for r in rows]
            print(
                f"  fit on {fit_name}: window={fitted.answer_window_chars}, "
                f"coverage={fitted.min_topic_coverage}"
            )
            print(
                f"{'  scored on the rest':<34}{len(held):>6}{_cells(score(detector, held))} | "
                f"{_cells(score_with_prompts(fitted, held))}"
            )

    flagged, pairs = swap_rate(aware, every)
    print(
        f"\nswap check: {flagged}/{pairs} = {flagged / max(pairs, 1):.3f} of on-topic answers "
        "read as off-topic under another objective"
    )
    text_us = microseconds_per_answer(lambda r: detector.is_refusal(r.response), every)
    aware_us = microseconds_per_answer(lambda r: aware.is_refusal(r.response, r.objective), every)
    print(
        f"cost per answer (median of {TIMING_REPEATS} passes over {len(every)} answers, "
        f"same run): text-only {text_us:.0f} us, prompt-aware {aware_us:.0f} us"
    )

    if args.show_misses:
        for row in every:
            text_wrong = detector.is_refusal(row.response) != row.is_refusal
            verdict = aware.judge(row.response, row.objective)
            if text_wrong or verdict.refusal != row.is_refusal:
                print(
                    f"  {row.source}:{row.row} label={int(row.is_refusal)} "
                    f"text={'miss' if text_wrong else 'ok'} "
                    f"aware={'miss' if verdict.refusal != row.is_refusal else 'ok'}"
                    f"({verdict.rule}) {row.response[:80]!r}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
