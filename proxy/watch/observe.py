"""Update the watch metrics (declared in proxy/metrics.py) from one choice's Outcome."""

from __future__ import annotations

from proxy.watch.watcher import Outcome


def observe(metrics, model_name: str, outcome: Outcome) -> None:
    """Call once per choice at the end of the answer.

    - `deepguard_refusal_outcomes_total{outcome}`: every choice;
    - `deepguard_refusal_onset_tokens`: every refusal (refused and recovered);
    - `deepguard_recovery_released_tokens`: recovered answers, tokens the client got first;
    - `deepguard_recovery_suppressed_total`: recovered answers whose start was dropped.
    """
    metrics.refusal_outcomes.labels(model_name=model_name, outcome=outcome.kind).inc()
    if outcome.onset_token is None:
        return
    metrics.refusal_onset.labels(model_name=model_name).observe(outcome.onset_token)
    if outcome.kind == "recovered":
        metrics.recovery_released.labels(model_name=model_name).observe(
            outcome.released_before_onset or 0
        )
        if outcome.suppressed:
            metrics.recovery_suppressed.labels(model_name=model_name).inc()
