"""Turn the upstream's chunks into the client's chunks, watching every choice token by token.

Works for chat completions (`delta.content`) and, when the operator enables them, text
completions (`text`).

No I/O: `AnswerRelay.on_chunk` takes one parsed upstream chunk and returns the chunks to send to
the client now; `finish` returns what is left when the upstream stream ends. The proxy always
streams from the upstream, so streamed and non-streamed answers go through this one path and the
recovery watch can never be skipped (the most reported guardrail bug class).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.watch import ChoiceWatch, Outcome, RefusalDetector
from proxy.watch.quoting import blank_quotes

# Delta fields the model writes text into. Each goes through the choice's one watch (the
# detector reads them all, in the order they stream) and its hold-back window; any other delta
# key but `role` is dropped, so a field a new vLLM release adds cannot bypass the watch.
TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")
# The watch's tag of each text field's pieces, built once (the relay runs once per token).
_FIELD_TAGS = {key: (key,) for key in TEXT_FIELDS}


@dataclass
class ChoiceState:
    watch: ChoiceWatch
    # One entry per pushed piece not yet released: [logprobs], so logprobs follow their text;
    # pieces the watch dropped are skipped by count (`watch.dropped_pieces`).
    pending_logprobs: deque = field(default_factory=deque)
    skipped: int = 0
    # Everything the model wrote (released or not), for the opt-in answer text in recovery logs.
    text: list[str] = field(default_factory=list)
    # What the client received, per field, and tool calls by index: the verified-history record.
    released: dict = field(default_factory=dict)
    released_tools: dict = field(default_factory=dict)
    tokens: int = 0
    finish_reason: str | None = None
    finished: bool = False
    outcome: Outcome | None = None

    def released_message(self) -> dict:
        """The assistant message as the client got it (what it may send back as history)."""
        message = {key: "".join(parts) for key, parts in self.released.items()}
        if self.released_tools:
            message["tool_calls"] = [self.released_tools[i] for i in sorted(self.released_tools)]
        return message


class AnswerRelay:
    def __init__(
        self,
        detector: RefusalDetector,
        start_window: int,
        hold_back_tokens: int,
        served_model: str,
        check_prompt: Callable[[str | None, list | None], Exception | None] | None = None,
        on_outcome: Callable[[int, Outcome, str], None] | None = None,
        mode: str = "chat",
        json_answer: bool = False,
        logprobs_withheld_tokens: int = 0,
    ) -> None:
        if mode not in ("chat", "text"):
            raise ValueError(f"mode must be 'chat' or 'text', not {mode!r}")
        self.mode = mode
        self._detector = detector
        self._start_window = start_window
        self._hold_back = hold_back_tokens
        self._served_model = served_model
        self._check_prompt = check_prompt
        self._on_outcome = on_outcome
        # JSON answers (JSON mode): quotes are syntax, a refusal inside a string still counts.
        self._json_answer = json_answer
        self._withheld = logprobs_withheld_tokens
        self._choices: dict[int, ChoiceState] = {}
        self._base: dict[str, Any] | None = None
        self.first_chunk_seen = False
        self.prompt_checked = False
        self.usage: dict | None = None

    # -- public -----------------------------------------------------------------------------
    @property
    def suppressed(self) -> bool:
        return any(s.watch.suppressed for s in self._choices.values())

    def choice_states(self) -> dict[int, ChoiceState]:
        return self._choices

    def on_chunk(self, chunk: dict) -> list[dict]:
        if not self.first_chunk_seen:
            self.first_chunk_seen = True
            if self._check_prompt is not None:
                # Fails closed: a first chunk without the rendered prompt is a mismatch.
                prompt_text = chunk.get("prompt_text")
                prompt_ids = chunk.get("prompt_token_ids")
                violation = self._check_prompt(
                    prompt_text if isinstance(prompt_text, str) else None,
                    prompt_ids if isinstance(prompt_ids, list) else None,
                )
                self.prompt_checked = True
                if violation is not None:
                    raise violation
        if self._base is None:
            self._base = {
                "id": chunk.get("id"),
                "object": "chat.completion.chunk" if self.mode == "chat" else "text_completion",
                "created": chunk.get("created"),
                "model": self._served_model,
            }
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        out: list[dict] = []
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                out.extend(self._on_choice(choice))
        return out

    def finish(self) -> list[dict]:
        """The upstream stream ended: release what is held for choices that did not finish."""
        out: list[dict] = []
        for index, state in sorted(self._choices.items()):
            if not state.finished:
                out.extend(self._finish_choice(index, state, state.finish_reason or "stop"))
        return out

    # -- internals --------------------------------------------------------------------------
    def _state(self, index: int) -> ChoiceState:
        state = self._choices.get(index)
        if state is None:
            state = ChoiceState(ChoiceWatch(self._detector, self._start_window, self._hold_back))
            self._choices[index] = state
        return state

    def _chunk(
        self, index: int, delta: dict, finish_reason: str | None = None, logprobs: Any = None
    ) -> dict:
        if self.mode == "text":
            choice = {
                "index": index,
                "text": delta.get("content") or "",
                "logprobs": logprobs,
                "finish_reason": finish_reason,
            }
        else:
            choice = {
                "index": index,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": finish_reason,
            }
        return {**self._base, "choices": [choice]}

    def _on_choice(self, choice: dict) -> list[dict]:
        index = choice.get("index", 0)
        if not isinstance(index, int):
            index = 0
        state = self._state(index)
        out: list[dict] = []
        # (field tag, text, detector text) of every piece of text in this delta, in order.
        pieces: list[tuple[Any, str, str]] = []
        if self.mode == "chat":
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            if "role" in delta:
                # OpenAI's first chunk: {"role": "assistant", "content": ""}; the role carries no
                # model text, so it is not held.
                out.append(self._chunk(index, {"role": "assistant", "content": ""}))
            for key in TEXT_FIELDS:
                text = delta.get(key)
                if isinstance(text, str) and text:
                    scan = blank_quotes(text) if self._json_answer and key == "content" else text
                    pieces.append((_FIELD_TAGS[key], text, scan))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    pieces.append(self._tool_piece(call))
        else:
            text = choice.get("text")
            if isinstance(text, str) and text:
                pieces.append((_FIELD_TAGS["content"], text, text))
        token_ids = choice.get("token_ids")
        n_tokens = len(token_ids) if isinstance(token_ids, list) else 1
        logprobs = choice.get("logprobs")
        for i, (tag, text, scan) in enumerate(pieces):
            n = n_tokens if i == 0 else 0  # the chunk's tokens belong to its first piece
            state.pending_logprobs.append(
                (
                    text,
                    self._visible_logprobs(state, logprobs, n)
                    if i == 0 and logprobs is not None
                    else None,
                )
            )
            state.tokens += n
            state.text.append(text)
            for piece, piece_tag in state.watch.push_tagged(text, n, tag, scan):
                out.append(self._release(index, state, piece, piece_tag))
        if choice.get("finish_reason"):
            out.extend(self._finish_choice(index, state, choice["finish_reason"]))
        return out

    @staticmethod
    def _tool_piece(call: dict) -> tuple[Any, str, str]:
        """A tool-call delta as a watched piece: its arguments are the text (JSON, so quotes are
        syntax), the rest of the delta travels in the tag and is put back on release."""
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else ""
        head = {k: v for k, v in call.items() if k in ("index", "id", "type")}
        name = function.get("name")
        return (
            ("tool_calls", head, name if isinstance(name, str) else None),
            arguments,
            blank_quotes(arguments),
        )

    def _visible_logprobs(self, state: ChoiceState, logprobs: Any, n_tokens: int) -> Any:
        """Logprobs of a piece minus those of the answer's first `withheld` tokens."""
        if logprobs is None or self._withheld <= state.tokens:
            return logprobs
        if state.tokens + n_tokens <= self._withheld:
            return None
        entries = logprobs.get("content") if isinstance(logprobs, dict) else None
        if not isinstance(entries, list):
            return None
        return {**logprobs, "content": entries[self._withheld - state.tokens :]}

    def _release(self, index: int, state: ChoiceState, piece: str, tag: Any) -> dict:
        # Pieces the watch dropped whole had their logprobs queued too: skip them, so the
        # logprobs sent are always those of the text sent.
        while state.skipped < state.watch.dropped_pieces and state.pending_logprobs:
            state.pending_logprobs.popleft()
            state.skipped += 1
        pushed, logprobs = (
            state.pending_logprobs.popleft() if state.pending_logprobs else (piece, None)
        )
        if piece != pushed:
            logprobs = None  # a piece cut at the refusal's onset: its tokens no longer match
        if tag[0] == "tool_calls":
            _, head, name = tag
            function = {"arguments": piece}
            if name is not None:
                function = {"name": name, **function}
            delta = {"tool_calls": [{**head, "function": function}]}
            slot = state.released_tools.setdefault(
                head.get("index", 0),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if head.get("id"):
                slot["id"] = head["id"]
            slot["function"]["name"] += name or ""
            slot["function"]["arguments"] += piece
        else:
            delta = {tag[0]: piece}
            state.released.setdefault(tag[0], []).append(piece)
        return self._chunk(index, delta, logprobs=logprobs)

    def _finish_choice(self, index: int, state: ChoiceState, finish_reason: str) -> list[dict]:
        out = [
            self._release(index, state, piece, tag) for piece, tag in state.watch.finish_tagged()
        ]
        state.finished = True
        state.finish_reason = finish_reason
        state.outcome = state.watch.outcome
        if self._on_outcome is not None:
            self._on_outcome(index, state.outcome, "".join(state.text))
        out.append(self._chunk(index, {}, finish_reason=finish_reason))
        return out


def carries_content(chunk: dict) -> bool:
    """Whether a client chunk carries answer content (for TTFT and for priming the stream)."""
    for choice in chunk["choices"]:
        delta = choice.get("delta")
        if delta is None:
            if choice.get("text"):
                return True
        elif delta.get("content") or delta.get("tool_calls"):
            return True
    return False
