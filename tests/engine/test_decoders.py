"""The lean decoder computes what the model's own forward computes."""

from __future__ import annotations

import pytest
import torch

from proxy.engine.hf_decoder import HFDecoder
from proxy.engine.lean_decoder import LeanDecoder, lean_decoder_supports
from proxy.engine.loading import load_model_and_tokenizer

SEQUENCE = [0, 86, 84, 259, 200, 73, 74, 1, 200, 0, 66, 84, 84, 74]


def reference_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def decoder_logits(decoder, ids: list[int], prefix: int) -> torch.Tensor:
    """Logits after each position from `prefix` on: prefill the first `prefix`, then step."""
    rows = [decoder.prefill(ids[:prefix])]
    rows += [decoder.step(token) for token in ids[prefix:]]
    return torch.stack(rows)


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_qwen_dir"])
def test_lean_float32_matches_the_models_forward(fixture, request):
    model, _ = load_model_and_tokenizer(request.getfixturevalue(fixture))
    assert lean_decoder_supports(model)
    expected = reference_logits(model, SEQUENCE)[5 - 1:]
    got = decoder_logits(LeanDecoder(model, "float32"), SEQUENCE, 5)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_hf_decoder_matches_the_models_forward(tiny):
    model, _ = tiny
    expected = reference_logits(model, SEQUENCE)[3 - 1:]
    got = decoder_logits(HFDecoder(model), SEQUENCE, 3)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["bfloat16", "int8"])
def test_reduced_precision_weights_stay_close(tiny, mode):
    model, _ = tiny
    expected = reference_logits(model, SEQUENCE)[4 - 1:]
    got = decoder_logits(LeanDecoder(model, mode), SEQUENCE, 4)
    similarity = torch.nn.functional.cosine_similarity(got, expected, dim=-1)
    assert similarity.min() > 0.99


def test_a_new_prefill_forgets_the_previous_sequence(tiny):
    model, _ = tiny
    decoder = LeanDecoder(model, "float32")
    decoder.prefill([5, 6, 7, 8, 9])
    decoder.step(10)
    torch.testing.assert_close(decoder.prefill(SEQUENCE[:4]),
                               reference_logits(model, SEQUENCE[:4])[-1], atol=1e-4, rtol=1e-4)


def test_cache_grows_past_its_initial_capacity(tiny):
    model, _ = tiny
    decoder = LeanDecoder(model, "float32", initial_capacity=4)
    got = decoder_logits(decoder, SEQUENCE, 3)
    expected = reference_logits(model, SEQUENCE)[2:]
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_too_long_sequences_are_refused(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="context"):
        LeanDecoder(model, "float32").prefill([5] * (model.config.max_position_embeddings + 1))
