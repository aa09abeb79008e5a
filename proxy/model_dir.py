"""Where the served model lives on disk: the one place the proxy and the alignment module agree on.

The proxy never builds a model. `make install` (or `deepguard model prepare`) writes the deeply
aligned default, an HF directory (safetensors, tokenizer, chat template), to `default_model_dir()`;
`deepguard serve` hands that directory to vLLM. Pure path logic: no torch, no `alignment` import.
"""

from __future__ import annotations

import os
from pathlib import Path

# The name clients send for the deep default (vLLM's --served-model-name), stable across versions.
DEFAULT_SERVED_NAME = "deepguard-smollm2"


def cache_root() -> Path:
    """Everything deepguard writes outside the checkout: prepared models, vLLM logs."""
    return Path(os.environ.get("DEEPGUARD_CACHE", Path.home() / ".cache" / "deepguard"))


def default_model_dir() -> Path:
    return cache_root() / "models" / DEFAULT_SERVED_NAME


def served_name_for(model_dir: str | Path) -> str:
    """`deepguard-smollm2` for the prepared default, else the directory's name."""
    path = Path(model_dir).expanduser().resolve()
    if path == default_model_dir().resolve():
        return DEFAULT_SERVED_NAME
    return path.name


def check_model_dir(model_dir: str | Path) -> Path:
    """The directory vLLM will load, or a ModelNotReady that says how to make it."""
    path = Path(model_dir).expanduser()
    if not (path / "config.json").is_file():
        if path == default_model_dir():
            raise ModelNotReady(
                f"the default model is not prepared yet ({path} has no config.json): "
                "run `make install` or `deepguard model prepare`"
            )
        raise ModelNotReady(
            f"not a model directory: {path} (expected an HF directory with "
            "config.json, weights and a tokenizer)"
        )
    return path


class ModelNotReady(FileNotFoundError):
    """The model directory is missing or incomplete."""
