"""`deepguard model merge`: weighted averages of model directories, equal tensors untouched."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from alignment.merge import MANIFEST_FILE, MergeError, average_models, normalise_weights
from proxy.cli import main


def _model(path, tensors: dict) -> str:
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "tokenizer.json").write_text("{}")
    return str(path)


@pytest.fixture
def pair(tmp_path):
    embed = torch.randn(8, 4, dtype=torch.bfloat16)
    a = _model(
        tmp_path / "a",
        {"embed": embed, "proj": torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.bfloat16)},
    )
    b = _model(
        tmp_path / "b",
        {
            "embed": embed.clone(),
            "proj": torch.tensor([[3.0, 2.0], [1.0, 0.0]], dtype=torch.bfloat16),
        },
    )
    return a, b, embed


def test_average_is_weighted_and_keeps_equal_tensors_bit_for_bit(tmp_path, pair):
    a, b, embed = pair
    out = average_models([a, b], tmp_path / "soup", [3, 1])
    merged = load_file(str(out / "model.safetensors"))
    assert merged["proj"].dtype == torch.bfloat16
    assert merged["proj"].float().tolist() == [[1.5, 2.0], [2.5, 3.0]]
    assert torch.equal(merged["embed"], embed)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert [i["weight"] for i in manifest["ingredients"]] == [0.75, 0.25]
    assert manifest["tensors_averaged"] == 1 and manifest["tensors_copied"] == 1
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()


def test_equal_weights_by_default(tmp_path, pair):
    a, b, _ = pair
    merged = load_file(str(average_models([a, b], tmp_path / "soup") / "model.safetensors"))
    assert merged["proj"].float().tolist() == [[2.0, 2.0], [2.0, 2.0]]


@pytest.mark.parametrize(
    "weights, n, message",
    [(None, 1, "at least two"), ([1.0], 2, "1 weights for 2"), ([1.0, 0.0], 2, "positive")],
)
def test_bad_weights_are_refused(weights, n, message):
    with pytest.raises(MergeError, match=message):
        normalise_weights(weights, n)


def test_models_of_other_shapes_or_tensors_are_refused(tmp_path, pair):
    a, _, _ = pair
    wide = _model(tmp_path / "wide", {"embed": torch.zeros(8, 5), "proj": torch.zeros(2, 2)})
    with pytest.raises(MergeError, match="embed"):
        average_models([a, wide], tmp_path / "x")
    other = _model(tmp_path / "other", {"embed": torch.zeros(8, 4)})
    with pytest.raises(MergeError, match="other tensors"):
        average_models([a, other], tmp_path / "y")
    with pytest.raises(MergeError, match="no model.safetensors"):
        average_models([a, str(tmp_path)], tmp_path / "z")


def test_cli_writes_the_average_and_errors_are_one_line(tmp_path, pair, capsys):
    a, b, _ = pair
    assert main(["model", "merge", a, b, "--weights", "1,1", "--out", str(tmp_path / "s")]) == 0
    assert "averaged model written" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="deepguard: 1 weights for 2 models"):
        main(["model", "merge", a, b, "--weights", "1", "--out", str(tmp_path / "t")])
