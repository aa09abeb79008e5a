"""Is a position of an answer inside a quotation or code? Then a refusal phrase there is quoted
("the bot replied: “I'm sorry, I can't help”"), not the model refusing.

Kept as a small fold over text so the incremental scanner can carry it forward piece by piece
using only `str.count` (C speed), never re-reading the whole answer.

Rules (chosen to fail towards "not quoted", so a real refusal is rarely missed):
- straight double quotes and typographic quotes (“ ”, « », 「 」, 『 』) open and close within a
  line; a newline resets them, so a stray inch mark (12") cannot hide the rest of the answer;
- backticks count across lines (``` fences and `inline code` both toggle parity);
- single quotes are ignored: they are apostrophes far more often than quotes.
"""

from __future__ import annotations

from typing import NamedTuple

_OPENERS = ("“", "«", "「", "『")
_CLOSERS = ("”", "»", "」", "』")


class QuoteState(NamedTuple):
    backticks: int = 0      # count since the start of the answer (parity matters)
    straight: int = 0       # `"` since the last newline (parity matters)
    typographic: int = 0    # opened minus closed since the last newline

    @property
    def quoted(self) -> bool:
        return self.backticks % 2 == 1 or self.straight % 2 == 1 or self.typographic > 0


def advance(state: QuoteState, segment: str) -> QuoteState:
    """The state after `segment`, given the state before it."""
    backticks = state.backticks + segment.count("`")
    newline = segment.rfind("\n")
    if newline >= 0:
        line = segment[newline + 1:]
        straight, typographic = 0, 0
    else:
        line = segment
        straight, typographic = state.straight, state.typographic
    if line:
        straight += line.count('"')
        typographic += (sum(line.count(c) for c in _OPENERS)
                        - sum(line.count(c) for c in _CLOSERS))
        typographic = max(typographic, 0)
    return QuoteState(backticks, straight, typographic)
