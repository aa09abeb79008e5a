"""Incremental detokenisation and stop strings, so streamed text is always final text.

Two reasons to hold text back, both as in vLLM:
- a multi-byte character split across tokens decodes to U+FFFD until its last byte arrives,
  so text is released only once the decoded window no longer ends in U+FFFD;
- the last `len(longest stop string) - 1` characters might be the start of a stop string, so
  they wait until the next token proves otherwise. The stop string itself is never returned.
"""

from __future__ import annotations

REPLACEMENT_CHAR = "\ufffd"
# Prompt tokens decoded as left context, so tokenizers that drop a word's leading space when it
# is decoded alone (sentencepiece) still produce the right first word.
CONTEXT_TOKENS = 5


class IncrementalDetokenizer:
    """Feed token ids one by one; `add` returns the text that became final with this token."""

    def __init__(self, tokenizer, prompt_ids: list[int], stop: tuple[str, ...] = ()) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = list(prompt_ids[-CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._stop = tuple(s for s in stop if s)
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self.text = ""  # all decoded text so far (cut at a stop string once one is found)
        self._released = 0  # characters of self.text already returned
        self.stopped = False  # a stop string was found

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix_offset:self._read_offset])
        after = self._decode(self._ids[self._prefix_offset:])
        if len(after) > len(before) and not after.endswith(REPLACEMENT_CHAR):
            self._append(after[len(before):])
            self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return self._release(final=self.stopped)

    def finish(self) -> str:
        """The rest of the text once generation ends (also a trailing incomplete character)."""
        if not self.stopped:
            before = self._decode(self._ids[self._prefix_offset:self._read_offset])
            after = self._decode(self._ids[self._prefix_offset:])
            if len(after) > len(before):
                self._append(after[len(before):])
            self._read_offset = len(self._ids)
        return self._release(final=True)

    def _append(self, piece: str) -> None:
        search_from = max(0, len(self.text) - self._hold)
        self.text += piece
        cuts = [i for i in (self.text.find(s, search_from) for s in self._stop) if i >= 0]
        if cuts:
            self.text = self.text[: min(cuts)]
            self.stopped = True

    def _release(self, final: bool) -> str:
        end = len(self.text) if final else max(self._released, len(self.text) - self._hold)
        piece = self.text[self._released:end]
        self._released = end
        return piece
