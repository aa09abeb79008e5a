"""Weight averaging of fine-tunes of one model (a "model soup", Wortsman et al., 2022).

Two fine-tunes of the same starting point that sit at opposite ends of a trade-off (one refuses
more harm and more harmless look-alikes, the other less of both) can be averaged into one model
that keeps most of what each gained; the starting point itself can be an ingredient, which
shrinks the average's step away from it. `deepguard model merge` writes the average as an HF
directory that `deepguard eval gate` and `python -m alignment.default_model` take like any
trained model.

Tensors that are equal in every ingredient (the embeddings of LoRA fine-tunes, for instance) are
copied bit for bit: averaging them in float32 and rounding back to bfloat16 would add noise that
an adapter extracted from the result then has to carry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from alignment.adapter import sha256_of

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "deepguard_merge.json"


class MergeError(ValueError):
    """The models cannot be averaged (not model directories, different shapes, bad weights)."""


def _weights_file(model: Path) -> Path:
    path = model / WEIGHTS_FILE
    if not path.is_file():
        raise MergeError(
            f"{model}: no {WEIGHTS_FILE} (expected an HF model directory with one weights file)"
        )
    return path


def normalise_weights(weights: list[float] | None, n: int) -> list[float]:
    """Weights summing to 1 (equal when None); each must be positive."""
    if n < 2:
        raise MergeError("averaging needs at least two models")
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise MergeError(f"{len(weights)} weights for {n} models")
    if any(not w > 0 for w in weights):
        raise MergeError(f"weights must be positive, got {weights}")
    total = sum(weights)
    return [w / total for w in weights]


def average_models(models: list[str | Path], out: str | Path, weights: list[float] | None = None):
    """Write the weighted average of `models` (HF directories of one architecture) to `out`;
    configuration and tokenizer files come from the first model. Returns `out`."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tqdm import tqdm

    models = [Path(m) for m in models]
    weights = normalise_weights(weights, len(models))
    files = [_weights_file(m) for m in models]
    handles = [safe_open(str(f), framework="pt") for f in files]
    names = set(handles[0].keys())
    for model, handle in zip(models[1:], handles[1:], strict=True):
        if set(handle.keys()) != names:
            differ = sorted(names ^ set(handle.keys()))[:3]
            raise MergeError(f"{model} has other tensors than {models[0]} (e.g. {differ})")

    merged, averaged = {}, 0
    for name in tqdm(sorted(names), desc="averaging tensors", unit="tensor"):
        tensors = [h.get_tensor(name) for h in handles]
        first = tensors[0]
        for model, tensor in zip(models[1:], tensors[1:], strict=True):
            if tensor.shape != first.shape or tensor.dtype != first.dtype:
                raise MergeError(
                    f"{name}: {tuple(tensor.shape)} {tensor.dtype} in {model}, "
                    f"{tuple(first.shape)} {first.dtype} in {models[0]}"
                )
        if all(torch.equal(first, t) for t in tensors[1:]):
            merged[name] = first
            continue
        total = torch.zeros(first.shape, dtype=torch.float32)
        for w, t in zip(weights, tensors, strict=True):
            total += w * t.float()
        merged[name] = total.to(first.dtype)
        averaged += 1

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for item in models[0].iterdir():
        if item.is_file() and item.name not in (WEIGHTS_FILE, MANIFEST_FILE):
            shutil.copy2(item, out / item.name)
    save_file(merged, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    manifest = {
        "kind": "weight average",
        "ingredients": [
            {"model": m.name, "weight": round(w, 6), "sha256": sha256_of(f)}
            for m, w, f in zip(models, weights, files, strict=True)
        ],
        "tensors_averaged": averaged,
        "tensors_copied": len(names) - averaged,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return out
