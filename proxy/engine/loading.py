"""Find and load the engine's model: an HF model directory or a single .gguf file.

Public API, also used by the alignment module (keep these signatures stable):
- `default_model_path() -> Path`: the packaged, unaligned base model (training starts there).
- `load_model_and_tokenizer(path, dtype=torch.float32) -> (model, tokenizer)`.
- `served_name_for(path) -> str`: the default `--served-model-name` for a model path.
"""

from __future__ import annotations

from pathlib import Path

import torch

from proxy.engine_location import ModelNotFoundError, packaged_base_model, served_name_for

__all__ = ["ModelNotFoundError", "default_model_path", "load_model_and_tokenizer",
           "served_name_for"]


def default_model_path() -> Path:
    """The packaged, unaligned base model (see proxy.engine_location, the one place that decides
    which model is served by default)."""
    return packaged_base_model()


def load_model_and_tokenizer(path: str | Path, dtype: torch.dtype = torch.float32):
    """Load a causal LM and its tokenizer on CPU, in eval mode.

    `path` is an HF model directory (config.json + weights + tokenizer files) or a .gguf file.
    transformers dequantises GGUF weights to `dtype`; the GGUF quantizer state is cleared
    afterwards so the model can be saved with `save_pretrained` like any float model.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        source, extra = str(path.parent), {"gguf_file": path.name}
    elif path.is_dir() and (path / "config.json").is_file():
        source, extra = str(path), {}
    elif not path.exists():
        raise ModelNotFoundError(f"model path does not exist: {path}")
    else:
        raise ModelNotFoundError(
            f"not a model: {path} (expected an HF model directory with config.json, "
            "or a .gguf file)")

    tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **extra)
    if extra:
        # Weights are plain floats now; without this, save_pretrained refuses or re-quantizes.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    model.eval()
    return model, tokenizer
