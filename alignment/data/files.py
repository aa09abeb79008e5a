"""Reading and writing the data files users bring and the builder writes (JSONL, CSV, text)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path


class DataFileError(ValueError):
    """A data file is missing, malformed, or lacks a required field."""


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file not found: {path}")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataFileError(f"{path}:{number}: expected a JSON object per line")
        missing = [
            key for key in required if not isinstance(row.get(key), str) or not row[key].strip()
        ]
        if missing:
            raise DataFileError(f"{path}:{number}: missing or empty field(s) {', '.join(missing)}")
        rows.append(row)
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


PROMPT_KEYS = ("prompt", "instruction", "goal", "question", "behavior", "text")


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a user file: .txt (one per line), .jsonl or .csv (first column named like a prompt)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"prompt file not found: {path}")
    if path.suffix == ".txt":
        return [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
    elif path.suffix == ".csv":
        lines = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if not line.startswith("#")
        ]
        rows = list(csv.DictReader(lines))
    else:
        raise DataFileError(f"{path}: unsupported prompt file type (use .txt, .jsonl or .csv)")
    key = next((k for k in PROMPT_KEYS if rows and k in rows[0]), None)
    if key is None:
        raise DataFileError(f"{path}: no prompt column (expected one of {', '.join(PROMPT_KEYS)})")
    return [str(row[key]).strip() for row in rows if str(row.get(key, "")).strip()]
