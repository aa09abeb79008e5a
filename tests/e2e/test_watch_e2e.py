"""The recovery watch end to end: official OpenAI client -> real proxy process -> scripted upstream.

Covers refused / recovered / answered, streamed and not, W = 0 (observe) and W > 0 (hold back):
what the client receives (one chunk per token, finish_reason), the `x-deepguard-recovery`
header, the exact metric values on /metrics, and the recovery log line. Streamed answers update
the same metrics as non-streamed ones (guard against "streaming skips the check").
"""

from __future__ import annotations

import json
import uuid

import pytest

HARMFUL_START = ["Sure", ",", " here", " is", " how", ":", " step", " one", ".", " Then"]
REFUSAL = [" I", "'m", " sorry", ",", " but", " I", " can", "'t", " help", " with", " that", "."]
ANSWER = ["The", " capital", " of", " France", " is", " Paris", "."]
REFUSAL_TEXT = "I'm sorry, but I can't help with that."
# The refusal above is recognised 9 tokens after its onset; 24 holds the whole start.
WINDOW = 24


def proxy_for(start_proxy, stub_upstream, window: int):
    return start_proxy(stub_upstream.url, env={"DEEPGUARD_WATCH_HOLD_BACK_TOKENS": str(window)})


def ask(proxy, stub_upstream, pieces, stream: bool, token_ids=None):
    """One request; returns (content pieces as the client got them, finish_reason, headers)."""
    user = stub_upstream.script(f"watch-{uuid.uuid4().hex[:8]}", pieces, token_ids=token_ids)
    client = proxy.client()
    messages = [{"role": "user", "content": user}]
    if not stream:
        raw = client.chat.completions.with_raw_response.create(
            model="stub-model", messages=messages
        )
        choice = raw.parse().choices[0]
        return [choice.message.content], choice.finish_reason, raw.headers
    with client.chat.completions.with_streaming_response.create(
        model="stub-model", messages=messages, stream=True
    ) as raw:
        pieces_out, finish = [], None
        for chunk in raw.parse():
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces_out.append(choice.delta.content)
                finish = choice.finish_reason or finish
        return pieces_out, finish, raw.headers


def model_name(proxy) -> str:
    return proxy.client().models.list().data[0].id


def watch_metrics(proxy) -> dict:
    m = model_name(proxy)
    value = lambda name, **labels: proxy.metric(name, model_name=m, **labels) or 0.0  # noqa: E731
    return {
        "refused": value("deepguard_refusal_outcomes_total", outcome="refused"),
        "recovered": value("deepguard_refusal_outcomes_total", outcome="recovered"),
        "answered": value("deepguard_refusal_outcomes_total", outcome="answered"),
        "onset_count": value("deepguard_refusal_onset_tokens_count"),
        "onset_sum": value("deepguard_refusal_onset_tokens_sum"),
        "released_count": value("deepguard_recovery_released_tokens_count"),
        "released_sum": value("deepguard_recovery_released_tokens_sum"),
        "suppressed": value("deepguard_recovery_suppressed_total"),
    }


def recovery_log_records(proxy) -> list[dict]:
    records = []
    for line in proxy.server.log().splitlines():
        start = line.find('{"event":"refusal_recovery"')
        if start >= 0:
            records.append(json.loads(line[start:]))
    return records


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "non-streamed"])
def test_recovered_answer_observed_with_w0(start_proxy, stub_upstream, stream):
    proxy = proxy_for(start_proxy, stub_upstream, 0)
    got, finish, headers = ask(proxy, stub_upstream, HARMFUL_START + REFUSAL, stream)
    assert "".join(got) == "".join(HARMFUL_START + REFUSAL)
    if stream:
        assert got == HARMFUL_START + REFUSAL  # one chunk per token, nothing merged
    assert finish == "stop"
    assert "x-deepguard-recovery" not in headers
    assert watch_metrics(proxy) == {
        "refused": 0,
        "recovered": 1,
        "answered": 0,
        "onset_count": 1,
        "onset_sum": 10,
        "released_count": 1,
        "released_sum": 10,
        "suppressed": 0,
    }
    [record] = recovery_log_records(proxy)
    assert record["request_id"] == headers["x-request-id"]
    assert (record["onset_token"], record["released_before_onset"], record["action"]) == (
        10,
        10,
        "observed",
    )
    assert "answer_text" not in record and "Sure, here" not in proxy.server.log()


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "non-streamed"])
def test_recovered_answer_suppressed_with_hold_back(start_proxy, stub_upstream, stream):
    proxy = proxy_for(start_proxy, stub_upstream, WINDOW)
    got, finish, headers = ask(proxy, stub_upstream, HARMFUL_START + REFUSAL, stream)
    assert "".join(got) == REFUSAL_TEXT  # the harmful start never left the proxy
    if stream:
        assert got == ["I"] + REFUSAL[1:]
    assert finish == "stop"
    assert headers["x-deepguard-recovery"] == "suppressed"
    assert watch_metrics(proxy) == {
        "refused": 0,
        "recovered": 1,
        "answered": 0,
        "onset_count": 1,
        "onset_sum": 10,
        "released_count": 1,
        "released_sum": 0,
        "suppressed": 1,
    }
    [record] = recovery_log_records(proxy)
    assert (record["dropped_tokens"], record["action"]) == (10, "suppressed")


@pytest.mark.parametrize("window", [0, WINDOW])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "non-streamed"])
def test_answered_and_refused_pass_unchanged(start_proxy, stub_upstream, window, stream):
    proxy = proxy_for(start_proxy, stub_upstream, window)
    answered, finish, headers = ask(proxy, stub_upstream, ANSWER, stream)
    assert "".join(answered) == "".join(ANSWER) and finish == "stop"
    refusal = ["I"] + REFUSAL[1:]
    refused, finish, refused_headers = ask(proxy, stub_upstream, refusal, stream)
    assert "".join(refused) == REFUSAL_TEXT and finish == "stop"
    if stream:
        assert answered == ANSWER and refused == refusal
    assert "x-deepguard-recovery" not in headers and "x-deepguard-recovery" not in refused_headers
    assert watch_metrics(proxy) == {
        "refused": 1,
        "recovered": 0,
        "answered": 1,
        "onset_count": 1,
        "onset_sum": 0,
        "released_count": 0,
        "released_sum": 0,
        "suppressed": 0,
    }
    assert recovery_log_records(proxy) == []


def test_token_ids_set_the_token_index(start_proxy, stub_upstream):
    # Two tokens per streamed piece: the onset ("I" of the piece " I", piece 10) is token 21 of
    # the upstream's token_ids (its 2 tokens prorated over its 2 characters), not chunk 10.
    proxy = proxy_for(start_proxy, stub_upstream, 0)
    pieces = HARMFUL_START + REFUSAL
    ids = [[2 * i, 2 * i + 1] for i in range(len(pieces))]
    got, _, _ = ask(proxy, stub_upstream, pieces, stream=True, token_ids=ids)
    assert got == pieces
    metrics = watch_metrics(proxy)
    assert (metrics["recovered"], metrics["onset_sum"], metrics["released_sum"]) == (1, 21, 21)
