"""Pick the fastest decoder that is exact for a model."""

from __future__ import annotations

from proxy.engine.hf_decoder import HFDecoder
from proxy.engine.lean_decoder import WEIGHT_MODES, LeanDecoder, lean_decoder_supports


def make_decoder(model, weights: str = "bfloat16"):
    """A `LeanDecoder` with `weights` ("float32", "bfloat16", "int8") for llama-family models;
    otherwise the model's own forward (`HFDecoder`) in the dtype it was loaded with."""
    if weights not in WEIGHT_MODES:
        raise ValueError(f"unknown weights {weights!r}; expected one of {WEIGHT_MODES}")
    if lean_decoder_supports(model):
        return LeanDecoder(model, weights)
    return HFDecoder(model)
