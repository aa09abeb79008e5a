"""Configuration of the recovery watch; the lead embeds it as `Settings.watch`
(env `DEEPGUARD_WATCH_<FIELD>`, e.g. `DEEPGUARD_WATCH_HOLD_BACK_TOKENS=16`)."""

from __future__ import annotations

import pydantic

from proxy.watch.phrases import MAX_PHRASE_CHARS


class WatchSettings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    # Tokens of content held back behind the model; 0 = observe only, never delay or drop.
    hold_back_tokens: int = pydantic.Field(0, ge=0, le=4096)
    # A refusal beginning before this token index is a plain refusal; later, a recovery.
    start_window: int = pydantic.Field(5, ge=0)
    # Literal phrases (case-insensitive) added to the built-in refusal phrase set.
    extra_refusal_phrases: list[str] = []
    # Put the answer text into the recovery log line (off: logs hold no answer text).
    log_answer_text: bool = False

    @pydantic.field_validator("extra_refusal_phrases")
    @classmethod
    def _phrases_are_usable(cls, phrases: list[str]) -> list[str]:
        for phrase in phrases:
            if not phrase.strip():
                raise ValueError("extra refusal phrases must not be empty")
            if len(phrase) > MAX_PHRASE_CHARS // 2:
                raise ValueError(
                    f"extra refusal phrase longer than {MAX_PHRASE_CHARS // 2} characters: "
                    f"{phrase[:40]!r}..."
                )
        return phrases
