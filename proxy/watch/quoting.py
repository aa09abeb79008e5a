"""Is a position of an answer inside a quotation or code? Then a refusal phrase there is quoted
("the bot replied: “I'm sorry, I can't help”"), not the model refusing.

Kept as a small fold over text so the incremental scanner can carry it forward piece by piece
using only `str.count` (C speed), never re-reading the whole answer.

Rules (chosen to fail towards "not quoted", so a real refusal is rarely missed):
- straight double quotes and typographic quotes (“ ”, « », 「 」, 『 』) open and close within a
  line; a newline resets them, so a stray inch mark (12") cannot hide the rest of the answer;
- ``` fences count across lines; a single backtick (`inline code`) opens and closes within a
  line like a straight quote, so one stray backtick cannot hide the rest of the answer;
- single quotes are ignored: they are apostrophes far more often than quotes.
When the answer is JSON (JSON mode, tool-call arguments) quotes are syntax, not quotation: the
relay blanks them before the detector sees the text (`blank_quotes`).
"""

from __future__ import annotations

from typing import NamedTuple

_OPENERS = ("“", "«", "「", "『")
_CLOSERS = ("”", "»", "」", "』")


class QuoteState(NamedTuple):
    backticks: int = 0  # ``` fences since the start of the answer (parity matters)
    straight: int = 0  # `"` since the last newline (parity matters)
    typographic: int = 0  # opened minus closed since the last newline
    inline: int = 0  # single backticks since the last newline (parity matters)

    @property
    def quoted(self) -> bool:
        return (
            self.backticks % 2 == 1
            or self.straight % 2 == 1
            or self.typographic > 0
            or self.inline % 2 == 1
        )


def advance(state: QuoteState, segment: str) -> QuoteState:
    """The state after `segment`, given the state before it. (A fence split across two
    segments counts as three single backticks; segments end at match offsets, so rarely.)"""
    fences = state.backticks + segment.count("```")
    newline = segment.rfind("\n")
    if newline >= 0:
        line = segment[newline + 1 :]
        straight, typographic, inline = 0, 0, 0
    else:
        line = segment
        straight, typographic, inline = state.straight, state.typographic, state.inline
    if line:
        straight += line.count('"')
        inline += line.count("`") - 3 * line.count("```")
        typographic += sum(line.count(c) for c in _OPENERS) - sum(line.count(c) for c in _CLOSERS)
        typographic = max(typographic, 0)
    return QuoteState(fences, straight, typographic, inline)


_QUOTE_BLANKS = str.maketrans({c: " " for c in '"`' + "".join(_OPENERS) + "".join(_CLOSERS)})


def blank_quotes(text: str) -> str:
    """The text with every quote and backtick replaced by a space (offsets unchanged): for
    JSON, where a refusal inside a string value is still the model refusing."""
    return text.translate(_QUOTE_BLANKS)
