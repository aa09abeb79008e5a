import pytest
from drilled import COMPLIANCE, PROMPTS

from alignment.evaluate.generate import LocalGenerator, Sampling
from alignment.evaluate.kl import per_position_kl, plot_kl
from alignment.evaluate.recovery import onset_tokens, recovery_profile, window_for
from alignment.evaluate.sources import HarmfulCase
from proxy.watch.detector import RefusalDetector

CASES = [HarmfulCase(p, COMPLIANCE) for p in PROMPTS]


def test_kl_of_a_model_with_itself_is_zero_everywhere(refusing):
    model, tok = refusing
    result = per_position_kl(model, model, tok, CASES, max_positions=12)
    assert result["positions"] == list(range(1, 13)) and result["pairs"] == [3] * 12
    assert all(value == pytest.approx(0.0, abs=1e-6) for value in result["kl"])


def test_kl_between_different_models_is_positive_and_plots(refusing, complying, tmp_path):
    result = per_position_kl(refusing[0], complying[0], refusing[1], CASES, max_positions=8)
    assert all(value > 0 for value in result["kl"])
    png = plot_kl({"refusing vs complying": result}, tmp_path / "kl.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_onset_token_index_from_token_texts():
    detector = RefusalDetector.default()
    pieces = [
        "Sure",
        ",",
        " step",
        " one",
        ".",
        " I",
        "'m",
        " sorry",
        ",",
        " but",
        " I",
        " can",
        "not",
        " help",
        " with",
        " that",
        ".",
    ]
    onset, recognised = onset_tokens(pieces, detector)
    assert onset == 5 and recognised >= 7
    assert onset_tokens(["Sure", ", here", " it is."], detector) is None


def test_window_is_the_coverage_quantile_of_recognition_tokens():
    recognised = [3, 5, 5, 8, 12, 20, 20, 21, 30, 40]
    assert window_for(recognised, 0.5) == 12
    assert window_for(recognised, 0.9) == 30
    assert window_for(recognised, 1.0) == 40
    assert window_for([], 0.9) == 0
    with pytest.raises(ValueError):
        window_for(recognised, 0)


def test_recovery_profile_counts_refusals_after_a_harmful_start(refusing, complying):
    deep = recovery_profile(
        LocalGenerator(*refusing), CASES[:2], ks=(0,), sampling=Sampling(max_new_tokens=30)
    )
    assert deep["recovered"] == 2 and deep["onset_histogram"] == {"0": 2}
    shallow = recovery_profile(
        LocalGenerator(*complying), CASES[:2], ks=(3,), sampling=Sampling(max_new_tokens=30)
    )
    assert shallow["recovered"] == 0 and shallow["hold_back_tokens"]["90%"] == 0
