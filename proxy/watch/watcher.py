"""The per-token recovery watcher: one `ChoiceWatch` per choice of an answer, streamed or not.

It feeds every piece to the refusal scanner, knows the token index of each piece (the caller
passes `n_tokens` from the upstream's `token_ids`, else 1 per chunk) and classifies the finished
answer: `refused` (refusal begins within the first `start_window` tokens), `recovered` (it
begins later) or `answered` (no refusal).

Hold-back window W (`hold_back_tokens`):
- W = 0: observe only; every piece is released at once.
- W > 0: a piece is released when the model has produced W more tokens after its last token,
  so the first piece leaves with token W+1 (or at `finish()` for a shorter answer), never later.
  One released piece per pushed piece, in order, so the caller emits one chunk per token.
- When the refusal onset is detected while content before it is still held, that content is
  dropped and the refusal (from the onset on, a partial piece if the onset falls mid-piece) is
  released at once; everything after it is passed straight through. Released content is never
  taken back.
- A phrase is recognised only once it is complete (plus a few settle characters), and the
  window keeps its strict schedule meanwhile (latency cost is the window and nothing else). So
  the content protected is what lies within W tokens of the point where the phrase is
  recognised: an onset at token k recognised at token k+d saves the last W-d tokens before it.
  Choose W larger than the longest opening you need to catch (e.g. 16 for
  "I'm sorry, but I can't help with that").
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from typing import Literal

from proxy.watch.detector import IncrementalRefusalClassifier

OutcomeKind = Literal["refused", "recovered", "answered"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    onset_token: int | None  # 0-based token index where the refusal begins
    released_before_onset: int | None  # tokens the client received before the onset
    suppressed: bool  # content before the onset was held back and dropped
    dropped_tokens: int


class ChoiceWatch:
    """One per choice. Feed pieces as they arrive; get back the pieces to send to the client now."""

    def __init__(
        self,
        detector: IncrementalRefusalClassifier,
        start_window: int = 5,
        hold_back_tokens: int = 0,
    ) -> None:
        if start_window < 0 or hold_back_tokens < 0:
            raise ValueError("start_window and hold_back_tokens must be >= 0")
        self._scanner = detector.scanner()
        self._start_window = start_window
        self._window = hold_back_tokens
        # Where each piece starts, in characters and tokens, to map the onset to a token index.
        self._piece_chars: list[int] = []
        self._piece_tokens: list[int] = []
        self._piece_sizes: list[int] = []
        # Held pieces: (text, first char offset, first token index, n_tokens, tag).
        self._held: deque[tuple[str, int, int, int, object]] = deque()
        # Pushed pieces dropped whole, and whether the latest release was cut mid-piece: lets a
        # caller keep per-piece data (logprobs, the field a piece came from) in step.
        self.dropped_pieces = 0
        self._chars = 0
        self._tokens = 0
        self._released_tokens = 0
        self._onset_char: int | None = None
        self._onset_token: int | None = None
        self._released_before_onset: int | None = None
        self._dropped_tokens = 0
        self._suppressed = False
        self._outcome: Outcome | None = None

    # -- feeding -------------------------------------------------------------------------------

    def push(self, text: str, n_tokens: int = 1) -> list[str]:
        """Add the next piece (`n_tokens` model tokens); return the pieces to release now."""
        return [piece for piece, _ in self.push_tagged(text, n_tokens)]

    def push_tagged(
        self, text: str, n_tokens: int = 1, tag: object = None, scan_as: str | None = None
    ) -> list[tuple[str, object]]:
        """`push` for a caller that streams several fields through one watch: each released
        piece comes back with the tag it was pushed with (a cut piece keeps its tag).
        `scan_as`: what the detector reads instead of `text`, same length (e.g. JSON with its
        quotes blanked)."""
        if scan_as is not None and len(scan_as) != len(text):
            raise ValueError("scan_as must have the length of text")
        if self._outcome is not None:
            raise RuntimeError("push() after finish(): the answer has ended")
        if not isinstance(n_tokens, int) or n_tokens < 0:
            raise ValueError(f"n_tokens must be an int >= 0, got {n_tokens!r}")
        char_start, token_start = self._chars, self._tokens
        self._chars += len(text)
        self._tokens += n_tokens

        if self._onset_char is not None:
            # The refusal is under way: nothing left to protect, pass it straight through.
            self._released_tokens += n_tokens
            return [(text, tag)]

        self._piece_chars.append(char_start)
        self._piece_tokens.append(token_start)
        self._piece_sizes.append(n_tokens)
        onset = self._scanner.feed(text if scan_as is None else scan_as)

        if self._window == 0:
            self._released_tokens += n_tokens
            if onset is not None:
                self._on_onset(onset)
            return [(text, tag)]

        self._held.append((text, char_start, token_start, n_tokens, tag))
        if onset is not None:
            return self._on_onset(onset)
        return self._release_aged()

    def finish(self) -> list[str]:
        """End of the answer: release what is still held (minus anything dropped)."""
        return [piece for piece, _ in self.finish_tagged()]

    def finish_tagged(self) -> list[tuple[str, object]]:
        if self._outcome is not None:
            raise RuntimeError("finish() called twice")
        released: list[tuple[str, object]] = []
        if self._onset_char is None:
            onset = self._scanner.close()
            if onset is not None:
                released = self._on_onset(onset)
        released += self._release_all()
        self._outcome = self._classify()
        return released

    # -- results -------------------------------------------------------------------------------

    @property
    def outcome(self) -> Outcome:
        """Valid after finish()."""
        if self._outcome is None:
            raise RuntimeError("outcome is known only after finish()")
        return self._outcome

    @property
    def suppressed(self) -> bool:
        """True as soon as held content was dropped (so the caller can still set a header)."""
        return self._suppressed

    @property
    def onset_token(self) -> int | None:
        return self._onset_token

    @property
    def tokens(self) -> int:
        return self._tokens

    # -- internals -----------------------------------------------------------------------------

    def _release_aged(self) -> list[tuple[str, object]]:
        # A piece whose last token is t leaves once token t + W exists (tokens > t + W).
        released = []
        held, limit = self._held, self._tokens - self._window
        while held and held[0][2] + held[0][3] <= limit:
            text, _, _, n, tag = held.popleft()
            self._released_tokens += n
            released.append((text, tag))
        return released

    def _release_all(self) -> list[tuple[str, object]]:
        released = [(piece[0], piece[4]) for piece in self._held]
        self._released_tokens += sum(piece[3] for piece in self._held)
        self._held.clear()
        return released

    def _on_onset(self, onset: int) -> list[tuple[str, object]]:
        """Record the onset; drop held content before it and release the refusal."""
        self._onset_char = onset
        self._onset_token = self._token_at(onset)
        released_earlier = self._released_tokens
        released: list[tuple[str, object]] = []
        dropped_text = False
        while self._held:
            text, char_start, _, n, tag = self._held[0]
            if char_start + len(text) <= onset and char_start < onset:
                self._held.popleft()  # wholly before the onset: never sent
                self._dropped_tokens += n
                self.dropped_pieces += 1
                dropped_text = dropped_text or not text.isspace()
                continue
            if char_start < onset:  # the onset falls inside this piece
                self._held.popleft()
                head = text[: onset - char_start]
                dropped_text = dropped_text or not head.isspace()
                released.append((text[onset - char_start :], tag))
                self._released_tokens += n
            break
        # What the client had before this call lies before the onset, unless the onset itself
        # was already out (then exactly the tokens before it were).
        self._released_before_onset = min(released_earlier, self._onset_token)
        self._suppressed = self._suppressed or dropped_text
        released += self._release_all()
        return released

    def _token_at(self, char_offset: int) -> int:
        """Token index of a character: the piece holding it, prorated inside multi-token pieces."""
        # Empty pieces share their offset with the next piece; bisect_right picks the last of
        # them, the one that holds the character.
        i = bisect_right(self._piece_chars, char_offset) - 1
        start_char, start_token, size = (
            self._piece_chars[i],
            self._piece_tokens[i],
            self._piece_sizes[i],
        )
        next_char = self._piece_chars[i + 1] if i + 1 < len(self._piece_chars) else self._chars
        width = next_char - start_char
        if size <= 1 or width <= 0:
            return start_token
        return start_token + min(size - 1, (char_offset - start_char) * size // width)

    def _classify(self) -> Outcome:
        if self._onset_token is None:
            return Outcome("answered", None, None, False, 0)
        kind: OutcomeKind = "refused" if self._onset_token < self._start_window else "recovered"
        return Outcome(
            kind,
            self._onset_token,
            self._released_before_onset,
            self._suppressed,
            self._dropped_tokens,
        )
