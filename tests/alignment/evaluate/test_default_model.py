import json

import pytest
import torch
from safetensors.torch import load_file
from tiny import make_model, make_tokenizer

from alignment.adapter import (
    DefaultModelUnavailable,
    adapter_digest,
    apply_adapter,
    extract_adapter,
)
from alignment.prepare import SUMMARY_FILE, prepare_default_model

NAME = "model.layers.0.mlp.up_proj.weight"


def identical_models():
    """base, trained, rebuilt: three copies of one tiny model (the test changes `trained`)."""
    tok = make_tokenizer("chatml")
    return tuple(make_model(tok, seed=0) for _ in range(3))


def test_low_rank_delta_round_trips_exactly(tmp_path):
    base, trained, rebuilt = identical_models()
    with torch.no_grad():
        w = trained.state_dict()[NAME]
        w.add_(
            torch.randn(w.shape[0], 2) @ torch.randn(2, w.shape[1])
        )  # a rank-2 change, like LoRA's
    extract_adapter(trained, base, tmp_path / "adapter", rank=4, command="test", dtype="float32")
    apply_adapter(rebuilt, tmp_path / "adapter")
    assert torch.allclose(rebuilt.state_dict()[NAME], trained.state_dict()[NAME], atol=1e-5)
    manifest = json.loads((tmp_path / "adapter" / "manifest.json").read_text())
    assert manifest["energy_kept"][NAME] == pytest.approx(1.0) and len(manifest["energy_kept"]) == 1


def test_bfloat16_factors_keep_the_delta_to_bfloat16_precision(tmp_path):
    base, trained, rebuilt = identical_models()
    with torch.no_grad():
        change = torch.randn(trained.state_dict()[NAME].shape[0], 2) @ torch.randn(
            2, trained.state_dict()[NAME].shape[1]
        )
        trained.state_dict()[NAME].add_(change)
    out = extract_adapter(trained, base, tmp_path / "adapter", rank=4, dtype="bfloat16")
    apply_adapter(rebuilt, out)
    applied = rebuilt.state_dict()[NAME] - base.state_dict()[NAME]
    assert (applied - change).abs().max() <= 0.02 * change.abs().max()
    assert json.loads((out / "manifest.json").read_text())["dtype"] == "bfloat16"


def test_int8_factors_keep_the_delta_within_a_percent_at_a_quarter_of_the_size(tmp_path):
    base, trained, rebuilt = identical_models()
    with torch.no_grad():
        shape = trained.state_dict()[NAME].shape
        change = torch.randn(shape[0], 3) @ torch.randn(3, shape[1])
        trained.state_dict()[NAME].add_(change)
    as_int8 = extract_adapter(trained, base, tmp_path / "int8", rank=3)  # the default dtype
    as_f32 = extract_adapter(trained, base, tmp_path / "f32", rank=3, dtype="float32")
    apply_adapter(rebuilt, as_int8)
    applied = rebuilt.state_dict()[NAME] - base.state_dict()[NAME]
    assert (applied - change).abs().max() <= 0.01 * change.abs().max()
    assert json.loads((as_int8 / "manifest.json").read_text())["dtype"] == "int8"
    factors = lambda d: sum(  # noqa: E731
        v.numel() * v.element_size()
        for k, v in load_file(str(d / "adapter.safetensors")).items()
        if k.endswith(("::up", "::down"))
    )
    assert factors(as_int8) * 4 == factors(as_f32)


def test_int8_plus_int4_keeps_a_full_rank_delta_closer_than_a_rank_cut_of_the_same_size(tmp_path):
    """The committed format: the strongest components int8, the rest int4 in groups. Against the
    same delta cut to fewer int8 components at about the same size, it keeps far more of it."""
    base, trained, mixed = identical_models()
    cut = identical_models()[2]
    with torch.no_grad():
        shape = trained.state_dict()[NAME].shape
        # Singular values 16..1: a trained delta's spread, every component matters.
        u, _ = torch.linalg.qr(torch.randn(shape[0], 16))
        v, _ = torch.linalg.qr(torch.randn(shape[1], 16))
        change = u @ torch.diag(torch.arange(16, 0, -1).float()) @ v.T * 1e-2
        trained.state_dict()[NAME].add_(change)
    as_mixed = extract_adapter(trained, base, tmp_path / "mixed", rank=16, dtype="int8+int4")
    as_cut = extract_adapter(trained, base, tmp_path / "cut", rank=12, dtype="int8")
    error = {}
    for label, model, adapter in (("mixed", mixed, as_mixed), ("cut", cut, as_cut)):
        apply_adapter(model, adapter)
        applied = model.state_dict()[NAME] - base.state_dict()[NAME]
        error[label] = float((applied - change).norm() / change.norm())
    manifest = json.loads((as_mixed / "manifest.json").read_text())
    assert manifest["dtype"] == "int8+int4" and manifest["int8_components"] == 8
    assert error["mixed"] < 0.06 and error["cut"] > 2 * error["mixed"]
    size = lambda d: (d / "adapter.safetensors").stat().st_size  # noqa: E731
    assert size(as_mixed) < 1.2 * size(as_cut)


@pytest.mark.parametrize("width", [64, 130, 7])
def test_int4_groups_round_trip_any_row_width(width):
    from alignment.adapter import INT4_GROUP, _dequantize_int4, _quantize_int4

    rows = torch.randn(3, width)
    rows[1] = 0  # an all-zero row must come back as zeros, not NaN
    packed, scale = _quantize_int4(rows)
    assert packed.dtype == torch.uint8 and packed.shape[1] * 2 % INT4_GROUP == 0
    back = _dequantize_int4(packed, scale, width)
    assert back.shape == rows.shape and not back.isnan().any() and (back[1] == 0).all()
    # absmax int4: each entry within half a step (1/14 of its group's largest entry).
    assert (back - rows).abs().max() <= rows.abs().max() / 14 * 1.01


def test_unknown_dtype_is_refused(tmp_path):
    base, trained, _ = identical_models()
    with pytest.raises(ValueError, match="int8\\+int4"):
        extract_adapter(trained, base, tmp_path / "a", dtype="int3")


def test_tampered_adapter_is_refused(tmp_path):
    tok = make_tokenizer("chatml")
    base, trained = make_model(tok, seed=0), make_model(tok, seed=1)
    out = extract_adapter(trained, base, tmp_path / "adapter", rank=2)
    with open(out / "adapter.safetensors", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(DefaultModelUnavailable, match="sha256"):
        apply_adapter(make_model(tok, seed=0), out)


def test_missing_artifact_says_so(tmp_path):
    with pytest.raises(DefaultModelUnavailable, match="not built"):
        prepare_default_model(tmp_path / "out", adapter_dir=tmp_path / "nothing")


def test_prepare_keeps_a_directory_that_holds_this_adapters_merge(tmp_path):
    tok = make_tokenizer("chatml")
    adapter = extract_adapter(
        make_model(tok, seed=1), make_model(tok, seed=0), tmp_path / "a", rank=2
    )
    out = tmp_path / "served"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / SUMMARY_FILE).write_text(json.dumps({"adapter_sha256": adapter_digest(adapter)}))
    assert prepare_default_model(out, adapter_dir=adapter) == out
    assert (out / "config.json").read_text() == "{}"  # untouched: nothing was merged again


def _low_rank_step(model, seed: int, rank: int = 2):
    """Add a rank-`rank` change to NAME, as one LoRA run merged onto the weights does."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = model.state_dict()[NAME]
        w.add_(
            torch.randn(w.shape[0], rank, generator=generator)
            @ torch.randn(rank, w.shape[1], generator=generator)
        )


def test_layers_rebuild_a_recipe_trained_on_top_of_the_served_model(tmp_path):
    """Two rank-2 runs in a row differ from the base by rank 4: one rank-2 adapter cannot hold
    them, two rank-2 layers (the second taken against the first's merge) hold them exactly."""
    base, served, rebuilt = identical_models()
    _low_rank_step(served, seed=1)
    artifact = tmp_path / "artifact"
    extract_adapter(served, base, artifact / "00-first", rank=2, dtype="float32")
    merged = make_model(make_tokenizer("chatml"), seed=0)
    apply_adapter(merged, artifact)  # what the served directory holds after the first layer
    on_top = make_model(make_tokenizer("chatml"), seed=0)
    on_top.load_state_dict(merged.state_dict())
    _low_rank_step(on_top, seed=2)
    second = extract_adapter(
        on_top, merged, artifact / "01-second", rank=2, dtype="float32", base_label="layer 00"
    )
    assert json.loads((second / "manifest.json").read_text())["base"] == "layer 00"

    apply_adapter(rebuilt, artifact)
    target = on_top.state_dict()[NAME]
    assert torch.allclose(rebuilt.state_dict()[NAME], target, atol=1e-4)
    one = extract_adapter(on_top, base, tmp_path / "one", rank=2, dtype="float32")
    alone = make_model(make_tokenizer("chatml"), seed=0)
    apply_adapter(alone, one)
    assert (alone.state_dict()[NAME] - target).abs().max() > 100 * 1e-4

    digests = {
        adapter_digest(artifact),
        adapter_digest(artifact / "00-first"),
        adapter_digest(second),
    }
    assert len(digests) == 3  # the layered artifact names its own merge


def test_an_artifact_with_an_adapter_and_layers_is_refused(tmp_path):
    base, trained, _ = identical_models()
    _low_rank_step(trained, seed=1)
    artifact = extract_adapter(trained, base, tmp_path / "artifact", rank=2)
    extract_adapter(trained, base, artifact / "01-more", rank=2)
    with pytest.raises(DefaultModelUnavailable, match="adapter and layers"):
        adapter_digest(artifact)
