"""Reference log-probabilities for the constrained objective, computed once before training.

One float per answer token, stored with the example (no padding to a maximum length), so the
reference model never runs during training: a constrained step costs what an SFT step costs.
"""

from __future__ import annotations

import contextlib

import torch
from tqdm.auto import tqdm

from alignment.mixing import PadCollator
from alignment.objectives import answer_mask, token_logprobs


def autocast_context(bf16: bool, device: torch.device | str = "cpu"):
    """The same autocast the Trainer uses, so the cached reference equals the first training pass."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


@torch.no_grad()
def compute_reference_logprobs(
    model, examples: list[dict], pad_token_id: int, batch_size: int = 8, bf16: bool = False
) -> list[list[float]]:
    """log pi_ref(label) for every labelled token of every example, in example order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    collate = PadCollator(pad_token_id)
    # Similar lengths together waste less padding; results go back to the original order.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    results: list[list[float]] = [[] for _ in examples]
    for start in tqdm(range(0, len(order), batch_size), desc="reference log-probs", unit="batch"):
        chunk = order[start : start + batch_size]
        batch = collate(
            [
                {"input_ids": examples[i]["input_ids"], "labels": examples[i]["labels"]}
                for i in chunk
            ]
        )
        with autocast_context(bf16, device):
            logits = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            ).logits
        labels = batch["labels"].to(device)
        flat = token_logprobs(logits, labels).float().cpu()
        counts = answer_mask(labels).sum(dim=1).tolist()
        for i, piece in zip(chunk, flat.split(counts), strict=True):
            results[i] = piece.tolist()
    model.train(was_training)
    return results
