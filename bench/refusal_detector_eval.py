"""Precision / recall of the refusal detector on labelled answers.

    .venv/bin/python bench/refusal_detector_eval.py [CSV ...]

Default data: ../shared/data/refusal-labelled/*.csv (PyRIT scorer evaluations, MIT, Microsoft).
Prints, per file and for all files: the confusion counts, precision, recall and F1, once on every
row and once without the texts whose label depends on the objective (see proxy/watch/labelled.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from proxy.watch.detector import RefusalDetector  # noqa: E402
from proxy.watch.labelled import label_conflicts, load_labelled, score  # noqa: E402

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "refusal-labelled"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="*", type=Path, help="labelled CSV files (default: shared)")
    parser.add_argument("--show-misses", action="store_true", help="print misclassified rows")
    args = parser.parse_args(argv)
    paths = args.csv or sorted(DEFAULT_DATA.glob("*.csv"))
    if not paths:
        parser.error(f"no CSV files found (looked in {DEFAULT_DATA})")
    detector = RefusalDetector.default()
    per_file = {path.name: load_labelled(path) for path in paths}
    every = [row for rows in per_file.values() for row in rows]
    conflicts = label_conflicts(every)

    print(f"{'set':<34}{'rows':>5}{'tp':>5}{'fp':>5}{'fn':>5}{'tn':>5}"
          f"{'precision':>11}{'recall':>8}{'f1':>7}")
    groups = [*per_file.items(), ("all files", every)]
    for name, rows in groups:
        for view, subset in (("", rows),
                             (" (text-decidable)",
                              [r for r in rows if r.response.strip() not in conflicts])):
            c = score(detector, subset)
            print(f"{name + view:<34}{len(subset):>5}{c.tp:>5}{c.fp:>5}{c.fn:>5}{c.tn:>5}"
                  f"{c.precision:>11.3f}{c.recall:>8.3f}{c.f1:>7.3f}")
    print(f"texts whose label depends on the objective: {len(conflicts)} "
          f"({sum(r.response.strip() in conflicts for r in every)} rows)")
    if args.show_misses:
        for row in every:
            if detector.is_refusal(row.response) != row.is_refusal:
                print(f"  {row.source}:{row.row} label={int(row.is_refusal)} "
                      f"{row.response[:90]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
