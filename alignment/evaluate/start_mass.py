"""How likely a model is to open its answer with a refusal: p(a refusal's first token) at the
answer's first position, one teacher-forced pass per prompt, no generation.

Greedy refusal is mostly decided there: a refusal starts greedily when one of those tokens wins
the first position, and at temperature 1.0 about that often (an "I" can also open a helpful
answer, "I'm glad to ...", so this bounds the refusals that start from above). It shows what a
recipe moved before any answer is judged: the switch guard lowered it on the held-out families
that read like harmless questions, the refusal anchor raised it everywhere (docs/evaluation.md).
The tokens are the refusal bank's first tokens (`alignment.preference.refusal_start_ids`), the
set the guard and the anchor train.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alignment.evaluate.breadth import Item


def refusal_start_mass(model, tokenizer, prompts: Sequence[str], start_ids: Sequence[int]):
    """p(any of `start_ids`) as the first answer token of each prompt (chat template applied)."""
    from alignment.chat import render_prompt

    device = next(model.parameters()).device
    ids = torch.tensor(list(start_ids), device=device)
    masses = []
    with torch.inference_mode():
        for prompt in prompts:
            # One prompt per pass: no padding, so positions are exactly those of serving.
            encoded = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)
            logits = model(torch.tensor([encoded["input_ids"]], device=device)).logits[0, -1]
            masses.append(logits.float().softmax(dim=-1)[ids].sum().item())
    return masses


def _means(groups: dict[str, list[float]]) -> dict[str, dict]:
    return {
        name: {"mean": round(sum(v) / len(v), 4), "n": len(v)}
        for name, v in sorted(groups.items())
        if v
    }


def evaluate_start_mass(
    model, tokenizer, items: Sequence[Item], training_prompts: Sequence[str] = ()
) -> dict:
    """Means by side, harmful family and harmless set; `training_prompts` (harmful prompts a
    recipe trained on) come out as their own group, to tell fitting from generalising."""
    from alignment.data.refusals import all_refusals
    from alignment.preference import refusal_start_ids

    start_ids = refusal_start_ids(tokenizer, all_refusals())
    masses = refusal_start_mass(model, tokenizer, [i.prompt for i in items], start_ids)
    sides: dict[str, list[float]] = {}
    families: dict[str, list[float]] = {}
    sets: dict[str, list[float]] = {}
    for item, mass in zip(items, masses, strict=True):
        sides.setdefault(item.side, []).append(mass)
        if item.side == "harmful":
            families.setdefault(item.group["family"], []).append(mass)
        else:
            sets.setdefault(item.group["set"], []).append(mass)
    if training_prompts:
        sides["harmful_training"] = refusal_start_mass(
            model, tokenizer, training_prompts, start_ids
        )
    return {
        "start_tokens": tokenizer.convert_ids_to_tokens(start_ids),
        "by_side": _means(sides),
        "harmful_by_family": _means(families),
        "harmless_by_set": _means(sets),
    }
