"""The one refusal detector, shared by the proxy (serving) and alignment/evaluate (offline).

Pure Python, no model: a compiled alternation over the phrase set in `phrases.py`, plus a check
that the match is not inside a quotation or code. `find_onset` answers for a whole text;
`scanner()` answers incrementally while an answer streams, at a bounded cost per piece.

A model-based classifier can stand in for offline use through the `RefusalClassifier` protocol;
the per-token watcher needs the incremental form (`IncrementalRefusalClassifier`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from proxy.watch.phrases import (
    MAX_PHRASE_CHARS,
    REFUSAL_KEYWORDS,
    REFUSAL_PATTERNS,
    expand_fragment,
    literal_fragment,
    literal_keyword,
    lower_same_length,
)
from proxy.watch.quoting import QuoteState, advance

# Characters that must follow a match before the scanner trusts it mid-stream, because some
# phrases end in a negative look-ahead ("I can't help" is not a refusal if " but" follows).
SETTLE_CHARS = 5
# A fragment whose first literal (after opening groups) is a Latin letter.
_LEADING_LATIN_LETTER = re.compile(r"(?:\(\?:|\()*[a-z]")
# Escapes such as \S or \W, which may be upper case in a lower-case pattern.
_ESCAPE = re.compile(r"\\.")
# A small model often glues a new sentence to the last word ("...safe projectsI can't help"), or
# loops through glued refusals ("I'm not able to helpI'm unable toI'm ..."). Lower-cased, that
# leaves no word boundary before "i can't", and blanking the letter before it would cut the word
# that ends the previous phrase ("hel i'm"). So an upper-case letter right after a lower-case one
# is kept as a glued sentence start, where phrases are also tried without their leading boundary.
_GLUED_START = re.compile(r"(?<=[a-z])[A-Z]")
# With a stray upper-case token between ("...meticulUSI can't help"), that run is blanked instead
# (no offset changes): it is not a word of any phrase. "AI can't" and "API can't" stay as they are.
_GLUED_RUN = re.compile(r"(?<=[a-z])[A-Z]+(?=I[\s'’])")
_GLUE_CONTEXT = 8  # raw characters kept from earlier pieces, so glue across pieces is seen too
# How glue is read changes what counts as a refusal: the gate's judge digest includes this.
GLUE_RULES = ("kept-word sentence start", _GLUED_START.pattern, _GLUED_RUN.pattern)


def _blank_glue(text: str) -> str:
    return _GLUED_RUN.sub(lambda m: " " * len(m.group()), text)


@runtime_checkable
class RefusalClassifier(Protocol):
    """Anything that can tell a refusal from an answer (e.g. a small judge model, offline)."""

    def is_refusal(self, text: str) -> bool: ...

    def find_onset(self, text: str) -> int | None: ...


@runtime_checkable
class IncrementalRefusalClassifier(RefusalClassifier, Protocol):
    """A classifier the per-token watcher can drive while an answer streams."""

    def scanner(self) -> RefusalScanner: ...


class RefusalDetector:
    """Finds where a refusal begins in an answer. Build once, share freely (immutable)."""

    def __init__(self, fragments: Iterable[str], keywords: Iterable[str] | None = None) -> None:
        """`fragments`: regular expressions (bounded, in lower case: they are matched against
        lower-cased text). `keywords`: expressions one of which occurs in every match (a cheap
        pre-filter); None runs the full pattern on every piece.
        """
        fragments = list(fragments)
        keywords = None if keywords is None else list(keywords)
        for fragment in fragments + (keywords or []):
            literal = _ESCAPE.sub("", fragment)
            if literal != literal.lower():
                raise ValueError(
                    f"refusal pattern {fragment!r} must be lower case "
                    "(text is lower-cased before matching)"
                )
        if not fragments:
            raise ValueError("a refusal detector needs at least one phrase")
        parts, widest = [], 1
        for fragment in fragments:
            widest = max(widest, _max_width(fragment))
            # A phrase starting with a Latin letter must start at a word boundary ("AI can't" is
            # not "I can't"); CJK phrases have no word boundaries to rely on.
            lead = r"\b" if _LEADING_LATIN_LETTER.match(fragment) else ""
            parts.append(f"{lead}(?:{fragment})")
        self._pattern = re.compile("|".join(parts))
        # The same phrases without the boundary, tried only where a sentence is glued on.
        self._glued = re.compile("|".join(f"(?:{fragment})" for fragment in fragments))
        # The scanner looks back only as far as the widest phrase can reach.
        self.lookback = widest
        self._keywords: re.Pattern[str] | None = None
        self._keyword_width = 0
        if keywords:
            self._keyword_width = max(_max_width(k) for k in keywords)
            self._keywords = re.compile("|".join(f"(?:{k})" for k in keywords))

    @classmethod
    def default(cls, extra_phrases: Iterable[str] = ()) -> RefusalDetector:
        """The built-in phrase set in every language, plus literal user phrases from config."""
        extra_phrases = list(extra_phrases)
        fragments = [expand_fragment(p) for group in REFUSAL_PATTERNS.values() for p in group]
        fragments += [literal_fragment(p) for p in extra_phrases]
        keywords = [expand_fragment(k) for group in REFUSAL_KEYWORDS.values() for k in group]
        keywords += [literal_keyword(p) for p in extra_phrases]
        return cls(fragments, keywords)

    def find_onset(self, text: str) -> int | None:
        """Character offset where the refusal begins, or None if the text does not refuse."""
        scanner = self.scanner()
        scanner.feed(text)
        return scanner.close()

    def is_refusal(self, text: str) -> bool:
        return self.find_onset(text) is not None

    def scanner(self) -> RefusalScanner:
        return RefusalScanner(
            self._pattern, self.lookback, self._keywords, self._keyword_width, self._glued
        )


class RefusalScanner:
    """Incremental detection over one answer: feed pieces in order; the onset stays set.

    Cost per piece is bounded by the piece plus a fixed look-back window (a phrase can start in
    an earlier piece), not by the length of the answer so far: only that window of text is kept.
    """

    __slots__ = (
        "_pattern",
        "_lookback",
        "_keywords",
        "_keyword_width",
        "_last_keyword",
        "_buf",
        "_base",
        "_length",
        "_search_from",
        "_state",
        "_state_at",
        "onset",
        "closed",
        "_raw_tail",
        "_trim_at",
        "_glued",
        "_glue_starts",
    )

    def __init__(
        self,
        pattern: re.Pattern[str],
        lookback: int,
        keywords: re.Pattern[str] | None = None,
        keyword_width: int = 0,
        glued: re.Pattern[str] | None = None,
    ) -> None:
        self._pattern = pattern
        self._glued = glued  # `pattern` without leading boundaries (None: no glue handling)
        self._glue_starts: list[int] = []  # offsets of glued sentence starts still in the buffer
        self._lookback = lookback
        self._keywords = keywords
        self._keyword_width = keyword_width
        self._last_keyword = -1  # start of the latest keyword seen (-1: none yet)
        self._buf = ""  # the tail of the answer still needed
        self._base = 0  # offset of _buf[0] in the whole answer
        self._length = 0  # characters fed so far
        self._search_from = 0  # candidates before this offset were already judged
        self._state = QuoteState()  # quote state at offset _state_at
        self._state_at = 0
        self.onset: int | None = None
        self.closed = False
        self._raw_tail = ""  # the last characters fed, as written (for glue across pieces)
        # Trim rarely (slicing costs a copy): once the buffer holds four look-backs more than
        # the text a match can still need.
        self._trim_at = 5 * lookback + SETTLE_CHARS

    def feed(self, piece: str) -> int | None:
        """Add the next piece; return the onset (offset in the whole text) once it is known."""
        if self.closed:
            raise RuntimeError("feed() after close(): the answer has ended")
        if self.onset is not None or not piece:
            self._length += len(piece)
            return self.onset
        previous = self._length
        buf = self._buf
        # Glue is judged over the raw tail of earlier pieces plus this one ("projects" + "I can't");
        # blanks it adds inside the tail are added to the buffer too (never removed: the tail lacks
        # the context that earlier blanks may have needed). The buffer always still holds the tail.
        tail = self._raw_tail[-len(buf) :] if buf else ""
        text = tail + piece
        self._raw_tail = text[-_GLUE_CONTEXT:]
        if text.lower() == text:
            # The common case, and the cheap one: no upper-case letter, so no glue (both of its
            # forms need one) and nothing to lower-case.
            buf += piece
        else:
            if self._glued is not None:
                starts = self._glue_starts
                for glued in _GLUED_START.finditer(text):
                    offset = previous - len(tail) + glued.start()
                    if not starts or offset > starts[-1]:
                        starts.append(offset)
            blanked = _blank_glue(text)
            n = len(tail)
            if n and blanked[:n] != tail:
                current = buf[-n:]
                merged = "".join(
                    " " if b == " " else c for b, c in zip(blanked[:n], current, strict=False)
                )
                if merged != current:
                    buf = buf[:-n] + merged
            buf += lower_same_length(blanked[n:])
        self._buf = buf
        self._length = previous + len(piece)
        # A match not yet judged ends after `previous` minus the settle margin, so it starts at
        # most `lookback` characters before that, and it contains a keyword from there on.
        earliest = previous - self._lookback - SETTLE_CHARS
        if self._keywords is None or self._keyword_since(previous) >= max(earliest, 0):
            self._search(max(self._search_from, earliest), final=False)
        if self.onset is None and self._length - self._base >= self._trim_at:
            self._trim()
        return self.onset

    def close(self) -> int | None:
        """End of the answer: matches still waiting for trailing characters are decided now."""
        if not self.closed:
            self.closed = True
            if self.onset is None:
                self._search(
                    max(self._search_from, self._length - self._lookback - SETTLE_CHARS), final=True
                )
        return self.onset

    def _keyword_since(self, previous: int) -> int:
        """Scan only the new text (plus a keyword's width back) for keywords; latest start."""
        pos = max(previous - self._keyword_width + 1 - self._base, 0)
        first = self._keywords.search(self._buf, pos)
        if first is None:
            return self._last_keyword  # the usual answer, without building an iterator
        for hit in self._keywords.finditer(self._buf, first.start()):
            self._last_keyword = max(self._last_keyword, self._base + hit.start())
        return self._last_keyword

    def _search(self, start: int, final: bool) -> None:
        base, buf = self._base, self._buf
        pos = max(start - base, 0)
        while (match := self._next_match(buf, pos)) is not None:
            if not final and match.end() + SETTLE_CHARS > len(buf):
                return  # too close to the end to be sure; judge it next time
            offset = base + match.start()
            self._search_from = offset + 1
            if not self._quoted_at(offset):
                self.onset = offset
                return
            pos = match.start() + 1

    def _next_match(self, buf: str, pos: int) -> re.Match[str] | None:
        """The first phrase from `pos` on: at a word boundary, or at a glued sentence start."""
        match = self._pattern.search(buf, pos)
        end = match.start() if match is not None else len(buf)
        for offset in self._glue_starts:
            at = offset - self._base
            if at >= end:
                break
            if at >= pos and (glued := self._glued.match(buf, at)) is not None:
                return glued
        return match

    def _quoted_at(self, offset: int) -> bool:
        # Candidates arrive in increasing order, so the quote state only moves forward.
        self._state = advance(
            self._state, self._buf[self._state_at - self._base : offset - self._base]
        )
        self._state_at = offset
        return self._state.quoted

    def _trim(self) -> None:
        keep_from = self._length - self._lookback - SETTLE_CHARS
        if self._state_at < keep_from:
            self._state = advance(
                self._state, self._buf[self._state_at - self._base : keep_from - self._base]
            )
            self._state_at = keep_from
        cut = min(keep_from, self._state_at) - self._base
        self._buf = self._buf[cut:]
        self._base += cut
        if self._glue_starts and self._glue_starts[0] < self._base:
            self._glue_starts = [g for g in self._glue_starts if g >= self._base]


def _max_width(fragment: str) -> int:
    """Longest text the fragment can match; rejects phrases wider than MAX_PHRASE_CHARS."""
    try:
        _, longest = re._parser.parse(fragment).getwidth()  # type: ignore[attr-defined]
    except re.error as exc:
        raise ValueError(f"invalid refusal phrase pattern {fragment!r}: {exc}") from exc
    if longest > MAX_PHRASE_CHARS:
        raise ValueError(
            f"refusal phrase {fragment[:60]!r} can match more than {MAX_PHRASE_CHARS} characters;"
            " bound every repeat"
        )
    return longest
