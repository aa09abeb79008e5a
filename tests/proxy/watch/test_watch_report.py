"""observe() updates the four watch metrics; the log record carries no answer text by default;
WatchSettings validates its fields."""

from __future__ import annotations

import pydantic
import pytest

from proxy.metrics import Metrics
from proxy.watch import Outcome, WatchSettings, observe, recovery_log_record

RECOVERED_SUPPRESSED = Outcome("recovered", 12, 3, True, 9)
RECOVERED_OBSERVED = Outcome("recovered", 40, 40, False, 0)
REFUSED = Outcome("refused", 0, 0, False, 0)
ANSWERED = Outcome("answered", None, None, False, 0)


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, {"model_name": "m", **labels})


def test_observe_updates_each_metric_once_per_choice():
    metrics = Metrics()
    for outcome in (RECOVERED_SUPPRESSED, RECOVERED_OBSERVED, REFUSED, ANSWERED, ANSWERED):
        observe(metrics, "m", outcome)
    assert sample(metrics, "deepguard_refusal_outcomes_total", outcome="recovered") == 2
    assert sample(metrics, "deepguard_refusal_outcomes_total", outcome="refused") == 1
    assert sample(metrics, "deepguard_refusal_outcomes_total", outcome="answered") == 2
    assert sample(metrics, "deepguard_refusal_onset_tokens_count") == 3
    assert sample(metrics, "deepguard_refusal_onset_tokens_sum") == 52
    assert sample(metrics, "deepguard_refusal_onset_tokens_bucket", le="0.0") == 1
    assert sample(metrics, "deepguard_recovery_released_tokens_count") == 2
    assert sample(metrics, "deepguard_recovery_released_tokens_sum") == 43
    assert sample(metrics, "deepguard_recovery_suppressed_total") == 1


def test_log_record_has_no_answer_text_unless_given():
    record = recovery_log_record("req-1", 0, "m", RECOVERED_SUPPRESSED, hold_back_tokens=16)
    assert record == {
        "event": "refusal_recovery",
        "request_id": "req-1",
        "choice": 0,
        "model_name": "m",
        "outcome": "recovered",
        "onset_token": 12,
        "released_before_onset": 3,
        "dropped_tokens": 9,
        "action": "suppressed",
    }
    with_text = recovery_log_record("req-1", 0, "m", RECOVERED_SUPPRESSED, 16, answer_text="t")
    assert with_text["answer_text"] == "t"


@pytest.mark.parametrize(
    "outcome, window, action",
    [
        (RECOVERED_OBSERVED, 0, "observed"),
        (RECOVERED_OBSERVED, 8, "released"),
        (RECOVERED_SUPPRESSED, 8, "suppressed"),
    ],
)
def test_log_action(outcome, window, action):
    assert recovery_log_record("r", 1, "m", outcome, window)["action"] == action


def test_settings_defaults_and_validation():
    s = WatchSettings()
    assert (s.hold_back_tokens, s.start_window, s.extra_refusal_phrases, s.log_answer_text) == (
        0,
        5,
        [],
        False,
    )
    assert WatchSettings(hold_back_tokens="16").hold_back_tokens == 16
    for bad in (
        {"hold_back_tokens": -1},
        {"start_window": -2},
        {"extra_refusal_phrases": [" "]},
        {"extra_refusal_phrases": ["x" * 101]},
        {"unknown": 1},
    ):
        with pytest.raises(pydantic.ValidationError):
            WatchSettings(**bad)
