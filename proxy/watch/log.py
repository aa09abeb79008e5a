"""The structured log record for a recovered answer (one per choice). Pure: the caller logs it.

It carries no answer text unless the operator turned `watch.log_answer_text` on, because answers
that started harmfully are exactly the text that should not spread into log pipelines.
"""

from __future__ import annotations

from proxy.watch.watcher import Outcome


def recovery_action(outcome: Outcome, hold_back_tokens: int) -> str:
    """What the proxy did about the harmful start: `suppressed`, `released` or `observed`."""
    if outcome.suppressed:
        return "suppressed"  # held content before the onset was dropped
    if hold_back_tokens > 0:
        return "released"  # the window was on but the onset came too late
    return "observed"  # W = 0: the proxy only watches


def recovery_log_record(
    request_id: str,
    choice_index: int,
    model_name: str,
    outcome: Outcome,
    hold_back_tokens: int,
    answer_text: str | None = None,
) -> dict:
    """Fields of the log line for a recovered answer; pass `answer_text` only if configured."""
    record = {
        "event": "refusal_recovery",
        "request_id": request_id,
        "choice": choice_index,
        "model_name": model_name,
        "outcome": outcome.kind,
        "onset_token": outcome.onset_token,
        "released_before_onset": outcome.released_before_onset,
        "dropped_tokens": outcome.dropped_tokens,
        "action": recovery_action(outcome, hold_back_tokens),
    }
    if answer_text is not None:
        record["answer_text"] = answer_text
    return record
