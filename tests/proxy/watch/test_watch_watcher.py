"""ChoiceWatch: classification, token indices, and the hold-back window's exact schedule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.watch.detector import RefusalDetector
from proxy.watch.watcher import ChoiceWatch, Outcome

DETECTOR = RefusalDetector.default()
HARMFUL_START = ["Sure", ",", " here", " is", " how", ":", " step", " one", ".", " Then"]
REFUSAL = [" I", "'m", " sorry", ",", " but", " I", " can", "'t", " help", " with", " that", "."]
ANSWER = ["The", " capital", " of", " France", " is", " Paris", "."]


def run(pieces, window=0, start_window=5, n_tokens=None):
    watch = ChoiceWatch(DETECTOR, start_window=start_window, hold_back_tokens=window)
    per_push = [
        watch.push(p, n) for p, n in zip(pieces, n_tokens or [1] * len(pieces), strict=True)
    ]
    at_end = watch.finish()
    return watch, per_push, at_end


def test_w0_releases_every_piece_at_once_and_classifies_recovery():
    watch, per_push, at_end = run(HARMFUL_START + REFUSAL)
    assert per_push == [[p] for p in HARMFUL_START + REFUSAL] and at_end == []
    assert watch.outcome == Outcome(
        "recovered", onset_token=10, released_before_onset=10, suppressed=False, dropped_tokens=0
    )


def test_answered_and_refused():
    assert run(ANSWER)[0].outcome == Outcome("answered", None, None, False, 0)
    refused = run(["I"] + REFUSAL[1:])[0].outcome
    assert (refused.kind, refused.onset_token, refused.suppressed) == ("refused", 0, False)


@pytest.mark.parametrize("lead, kind", [(4, "refused"), (5, "recovered")])
def test_start_window_boundary(lead, kind):
    outcome = run(["x"] * lead + REFUSAL)[0].outcome
    assert (outcome.kind, outcome.onset_token) == (kind, lead)


@pytest.mark.parametrize("window", [1, 3, 8])
def test_first_piece_leaves_with_token_w_plus_1(window):
    watch = ChoiceWatch(DETECTOR, hold_back_tokens=window)
    pieces = [f" w{i}" for i in range(window + 3)]
    for i, piece in enumerate(pieces):
        released = watch.push(piece)
        # After push i there are i+1 tokens; piece j leaves once tokens > j + window.
        assert released == ([pieces[i - window]] if i >= window else [])
    assert watch.finish() == pieces[-window:]
    assert watch.outcome.kind == "answered"


def test_short_answer_is_released_at_finish_in_pieces():
    watch, per_push, at_end = run(ANSWER, window=16)
    assert per_push == [[]] * len(ANSWER)
    assert at_end == ANSWER


def test_held_harmful_start_is_dropped_and_only_the_refusal_released():
    # The opening is recognised at token 19 (" with"), 9 tokens after the onset at token 10:
    # a window of 19 tokens still holds the whole start then.
    watch, per_push, at_end = run(HARMFUL_START + REFUSAL, window=19)
    released = [p for batch in per_push for p in batch] + at_end
    assert "".join(released) == "I'm sorry, but I can't help with that."
    assert released[0] == "I"  # the onset falls after the leading space of " I"
    assert watch.suppressed
    assert watch.outcome == Outcome(
        "recovered", onset_token=10, released_before_onset=0, suppressed=True, dropped_tokens=10
    )


def test_window_shorter_than_recognition_lag_saves_only_its_tail():
    # W = 16, recognised at token 19: tokens 0-2 went out earlier; token 3 was due to leave with
    # token 19 but the refusal is seen in the same push, so it is dropped with tokens 4-9.
    watch, per_push, at_end = run(HARMFUL_START + REFUSAL, window=16)
    released = [p for batch in per_push for p in batch] + at_end
    assert "".join(released) == "Sure, hereI'm sorry, but I can't help with that."
    assert watch.outcome == Outcome(
        "recovered", onset_token=10, released_before_onset=3, suppressed=True, dropped_tokens=7
    )


def test_suppressed_turns_true_when_the_drop_happens():
    watch = ChoiceWatch(DETECTOR, hold_back_tokens=16)
    seen = []
    for piece in HARMFUL_START + REFUSAL:
        watch.push(piece)
        seen.append(watch.suppressed)
    # Recognised at " with" (the settle characters after "help"), index 19 of the stream.
    assert seen.index(True) == len(HARMFUL_START) + REFUSAL.index(" with")


def test_released_content_is_never_taken_back():
    # W = 4 is shorter than the refusal's opening: most of the start is out before recognition.
    watch, per_push, at_end = run(HARMFUL_START + REFUSAL, window=4)
    released = [p for batch in per_push for p in batch] + at_end
    text = "".join(released)
    assert text.endswith("I'm sorry, but I can't help with that.")
    assert text.startswith("Sure, here is how: step one. Then")
    assert not watch.suppressed
    assert watch.outcome.released_before_onset == 10 and watch.outcome.dropped_tokens == 0


def test_onset_inside_a_multi_token_piece_releases_the_refusal_part():
    pieces = ["Sure, here is how.", " Mix A and B. I'm sorry,", " but I can't help with that."]
    watch, per_push, at_end = run(pieces, window=20, n_tokens=[5, 8, 8])
    released = [p for batch in per_push for p in batch] + at_end
    assert released == ["I'm sorry,", " but I can't help with that."]
    out = watch.outcome
    assert out.suppressed and out.kind == "recovered" and out.dropped_tokens == 5
    assert 5 < out.onset_token < 13  # prorated inside the second piece


def test_window_counts_tokens_not_pieces():
    watch = ChoiceWatch(DETECTOR, hold_back_tokens=4)
    assert watch.push("ab", 2) == []
    assert watch.push("cd", 2) == []
    assert watch.push("e", 1) == []  # 5 tokens: token 1 (index 1) + 4 = 5 not yet > 5
    assert watch.push("f", 1) == ["ab"]  # 6 tokens: piece 0 ends at token 1, 1 + 4 < 6


def test_refusal_recognised_only_at_finish_still_drops_held_start():
    watch, per_push, at_end = run(["Sure", ", step one.", " I", " can't", " help"], window=16)
    assert per_push == [[]] * 5
    assert at_end == ["I", " can't", " help"]
    assert watch.outcome.suppressed and watch.outcome.onset_token == 2


def test_whitespace_before_the_onset_is_not_a_suppression():
    watch, per_push, at_end = run(["\n", "I", " cannot", " help", " with", " that"], window=8)
    released = [p for batch in per_push for p in batch] + at_end
    assert released == ["I", " cannot", " help", " with", " that"] and not watch.suppressed
    assert watch.outcome.kind == "refused"


def test_bad_use_is_an_error():
    watch = ChoiceWatch(DETECTOR)
    with pytest.raises(ValueError):
        watch.push("x", -1)
    with pytest.raises(RuntimeError):
        _ = watch.outcome
    watch.finish()
    with pytest.raises(RuntimeError):
        watch.push("x")
    with pytest.raises(RuntimeError):
        watch.finish()
    with pytest.raises(ValueError):
        ChoiceWatch(DETECTOR, hold_back_tokens=-1)


PIECE = st.sampled_from(
    [
        "Sure",
        ",",
        " here",
        " is",
        " how",
        ".",
        " I",
        "'m",
        " sorry",
        " but",
        " can",
        "'t",
        " help",
        " with",
        " that",
        "\n",
        "",
        " ok",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(PIECE, st.integers(0, 3)), max_size=40), st.integers(0, 12))
def test_schedule_and_content_invariants(stream, window):
    watch = ChoiceWatch(DETECTOR, hold_back_tokens=window)
    released, tokens, ends = [], 0, []
    for text, n in stream:
        out = watch.push(text, n)
        released += out
        tokens += n
        ends.append(tokens)
        if not watch.suppressed and watch.onset_token is None:
            # Exactly the pieces whose last token is at least W tokens old have been released.
            assert len(released) == sum(1 for end in ends if end + window <= tokens)
    released += watch.finish()
    full = "".join(t for t, _ in stream)
    outcome = watch.outcome
    if outcome.suppressed:
        assert full.endswith("".join(released)) and len("".join(released)) < len(full)
    else:
        assert "".join(released).strip() == full.strip() or full.endswith("".join(released))
    if outcome.onset_token is None:
        assert released == [t for t, _ in stream]
