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
