"""Batched generation with the model being aligned (or the unaligned source of harmful answers).

Left padding so every row's answer starts at the same column; greedy decoding by default so a
build is reproducible; a JSONL cache keyed by model, prompt and settings, because generation on a
CPU is the slow part of `deepguard data build` and reruns should not repeat it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from alignment.chat import end_of_turn_ids, render_prompt


class GenerationCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.entries[row["key"]] = row["text"]

    @staticmethod
    def key(*parts) -> str:
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put(self, key: str, text: str) -> None:
        self.entries[key] = text
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n")


@torch.no_grad()
def generate_answers(
    model,
    tokenizer,
    prompts: list[str],
    model_id: str,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    prefill: str = "",
    system: str | None = None,
    cache: GenerationCache | None = None,
    desc: str = "generating",
) -> list[str]:
    """The model's answer to each prompt (greedy). With `prefill`, the answer is forced to start
    with that text and the returned answer includes it."""
    cache = cache or GenerationCache(None)
    keys = [cache.key(model_id, p, prefill, system, max_new_tokens) for p in prompts]
    todo = [i for i, k in enumerate(keys) if cache.get(k) is None]
    stop_ids = end_of_turn_ids(tokenizer)
    tokenizer.padding_side = "left"
    model.eval()
    # Similar prompt lengths share a batch: less padding, less wasted compute.
    todo.sort(key=lambda i: len(prompts[i]))
    for start in tqdm(range(0, len(todo), batch_size), desc=desc, unit="batch"):
        chunk = todo[start : start + batch_size]
        texts = [render_prompt(tokenizer, prompts[i], system) + prefill for i in chunk]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            model.device
        )
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stop_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        for i, row in zip(chunk, new_tokens, strict=True):
            cache.put(keys[i], prefill + tokenizer.decode(row, skip_special_tokens=True).strip())
    return [cache.get(k) for k in keys]
