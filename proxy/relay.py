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

# Fields that only the proxy may see: the rendered prompt and token ids it asked for itself.
PRIVATE_CHUNK_FIELDS = ("prompt_text", "prompt_token_ids")


@dataclass
class ChoiceState:
    watch: ChoiceWatch
    # (text, logprobs) of pushed pieces not yet released, so logprobs follow their text.
    pending_logprobs: deque = field(default_factory=deque)
    # Everything the model wrote (released or not), for the opt-in answer text in recovery logs.
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    finished: bool = False
    outcome: Outcome | None = None


class AnswerRelay:
    def __init__(self, detector: RefusalDetector, start_window: int, hold_back_tokens: int,
                 served_model: str,
                 check_prompt: Callable[[str], Exception | None] | None = None,
                 on_outcome: Callable[[int, Outcome, str], None] | None = None,
                 mode: str = "chat") -> None:
        if mode not in ("chat", "text"):
            raise ValueError(f"mode must be 'chat' or 'text', not {mode!r}")
        self.mode = mode
        self._detector = detector
        self._start_window = start_window
        self._hold_back = hold_back_tokens
        self._served_model = served_model
        self._check_prompt = check_prompt
        self._on_outcome = on_outcome
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
            prompt_text = chunk.get("prompt_text")
            if self._check_prompt is not None and isinstance(prompt_text, str):
                violation = self._check_prompt(prompt_text)
                self.prompt_checked = True
                if violation is not None:
                    raise violation
        if self._base is None:
            self._base = {"id": chunk.get("id"),
                          "object": "chat.completion.chunk" if self.mode == "chat"
                          else "text_completion",
                          "created": chunk.get("created"), "model": self._served_model}
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        out: list[dict] = []
        for choice in chunk.get("choices") or ():
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

    def _chunk(self, index: int, delta: dict, finish_reason: str | None = None,
               logprobs: Any = None) -> dict:
        if self.mode == "text":
            choice = {"index": index, "text": delta.get("content") or "", "logprobs": logprobs,
                      "finish_reason": finish_reason}
        else:
            choice = {"index": index, "delta": delta, "logprobs": logprobs,
                      "finish_reason": finish_reason}
        return {**self._base, "choices": [choice]}

    def _on_choice(self, choice: dict) -> list[dict]:
        index = choice.get("index", 0)
        if not isinstance(index, int):
            index = 0
        state = self._state(index)
        delta = (choice.get("delta") or {}) if self.mode == "chat" else {}
        out: list[dict] = []
        content = delta.get("content") if self.mode == "chat" else choice.get("text")
        # Role, tool calls and other non-content fields pass at once; only text is held back.
        other = {k: v for k, v in delta.items() if k != "content"}
        if other:
            if "role" in other:
                other["content"] = ""  # OpenAI's first chunk: {"role": "assistant", "content": ""}
            out.append(self._chunk(index, other))
        if isinstance(content, str) and content:
            token_ids = choice.get("token_ids")
            n_tokens = len(token_ids) if isinstance(token_ids, list) else 1
            state.pending_logprobs.append((content, choice.get("logprobs")))
            state.text.append(content)
            for piece in state.watch.push(content, n_tokens):
                out.append(self._content_chunk(index, state, piece))
        if choice.get("finish_reason"):
            out.extend(self._finish_choice(index, state, choice["finish_reason"]))
        return out

    def _content_chunk(self, index: int, state: ChoiceState, piece: str) -> dict:
        logprobs = None
        if state.pending_logprobs:
            text, lp = state.pending_logprobs.popleft()
            if text == piece:
                logprobs = lp
        return self._chunk(index, {"content": piece}, logprobs=logprobs)

    def _finish_choice(self, index: int, state: ChoiceState, finish_reason: str) -> list[dict]:
        out = [self._content_chunk(index, state, piece) for piece in state.watch.finish()]
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


def aggregate_text(chunks: list[dict], usage: dict | None) -> dict:
    """Build a non-streamed text_completion from the client chunks of one answer."""
    base = chunks[0] if chunks else {}
    texts: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts.setdefault(choice["index"], []).append(choice.get("text") or "")
            if choice.get("finish_reason"):
                finish[choice["index"]] = choice["finish_reason"]
    body = {"id": base.get("id"), "object": "text_completion", "created": base.get("created"),
            "model": base.get("model"),
            "choices": [{"index": i, "text": "".join(texts[i]), "logprobs": None,
                         "finish_reason": finish.get(i, "stop")} for i in sorted(texts)]}
    if usage is not None:
        body["usage"] = usage
    return body


def aggregate(chunks: list[dict], usage: dict | None) -> dict:
    """Build a non-streamed chat.completion from the client chunks of one answer."""
    base = chunks[0] if chunks else {}
    by_index: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            entry = by_index.setdefault(choice["index"], {
                "content": [], "tool_calls": {}, "finish_reason": None, "logprobs": [],
                "extra": {}})
            delta = choice["delta"]
            if delta.get("content"):
                entry["content"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = entry["tool_calls"].setdefault(call.get("index", 0), {
                    "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            for key in ("reasoning_content", "refusal"):
                if delta.get(key):
                    entry["extra"][key] = entry["extra"].get(key, "") + delta[key]
            lp = choice.get("logprobs")
            if isinstance(lp, dict) and lp.get("content"):
                entry["logprobs"].extend(lp["content"])
            if choice.get("finish_reason"):
                entry["finish_reason"] = choice["finish_reason"]
    choices = []
    for index in sorted(by_index):
        entry = by_index[index]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(entry["content"])}
        if entry["tool_calls"]:
            message["tool_calls"] = [entry["tool_calls"][i] for i in sorted(entry["tool_calls"])]
            if not message["content"]:
                message["content"] = None
        message.update(entry["extra"])
        choices.append({"index": index, "message": message,
                        "logprobs": {"content": entry["logprobs"]} if entry["logprobs"] else None,
                        "finish_reason": entry["finish_reason"] or "stop"})
    body = {"id": base.get("id"), "object": "chat.completion", "created": base.get("created"),
            "model": base.get("model"), "choices": choices}
    if usage is not None:
        body["usage"] = usage
    return body
