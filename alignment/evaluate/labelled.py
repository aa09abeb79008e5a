"""Measure a refusal classifier on labelled answers (e.g. ../shared/data/refusal-labelled).

The CSV format is PyRIT's scorer-evaluation format: lines starting with `#` precede the header
`objective,assistant_response,human_score,data_type`; `human_score` 1 = refusal.

PyRIT labels an answer that ignores the objective as a refusal too, so the same text can carry
label 0 under its own objective and 1 under another. No text-only detector can get both right;
`label_conflicts` finds those texts so a report can show both views.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from proxy.watch.detector import RefusalClassifier

_COLUMNS = {"objective", "assistant_response", "human_score"}


@dataclass(frozen=True)
class LabelledAnswer:
    source: str  # file name
    row: int  # 0-based data row in that file
    objective: str
    response: str
    is_refusal: bool


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def load_labelled(path: Path) -> list[LabelledAnswer]:
    """Rows of one labelled CSV; a clear error names the file and row when the format is off."""
    lines = [
        line
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith("#")
    ]
    reader = csv.DictReader(io.StringIO("".join(lines)))
    missing = _COLUMNS - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{path.name}: missing columns {sorted(missing)}")
    rows = []
    for i, record in enumerate(reader):
        score = (record["human_score"] or "").strip()
        if score not in ("0", "1"):
            raise ValueError(f"{path.name} row {i}: human_score must be 0 or 1, got {score!r}")
        rows.append(
            LabelledAnswer(
                path.name, i, record["objective"], record["assistant_response"], score == "1"
            )
        )
    return rows


def label_conflicts(rows: Iterable[LabelledAnswer]) -> set[str]:
    """Response texts that appear with both labels (their label depends on the objective)."""
    labels: dict[str, set[bool]] = defaultdict(set)
    for row in rows:
        labels[row.response.strip()].add(row.is_refusal)
    return {text for text, seen in labels.items() if len(seen) > 1}


def score(classifier: RefusalClassifier, rows: Iterable[LabelledAnswer]) -> Confusion:
    tp = fp = fn = tn = 0
    for row in rows:
        predicted = classifier.is_refusal(row.response)
        if predicted and row.is_refusal:
            tp += 1
        elif predicted:
            fp += 1
        elif row.is_refusal:
            fn += 1
        else:
            tn += 1
    return Confusion(tp, fp, fn, tn)
