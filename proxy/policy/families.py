"""Chat-template families the policy knows: their control markers and their generation header.

One table feeds two checks: `control_tokens.py` rejects every marker below in any client string
(always on, even when the served tokenizer cannot be read), and `rendered.py` uses the generation
header and the turn markers to verify the prompt the upstream actually rendered.

`<s>` / `</s>` are left out of the built-in table on purpose: they are also HTML (strikethrough),
and a Llama-2/Mistral tokenizer that really uses them lists them itself, so they are still caught
when the served tokenizer is readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    markers: tuple[str, ...]  # strings a client must never send
    turn_markers: tuple[str, ...]  # one occurrence per rendered turn (incl. the generation header)
    generation_header: re.Pattern  # matched against the end of the rendered prompt
    # How many turns a list of messages may render to: (low, high), both inclusive.
    turn_range: Callable[[list[dict]], tuple[int, int]]


def _roles(messages: list[dict]) -> tuple[int, int, int, int, int]:
    """(all, system+developer, user, assistant, tool-messages-that-follow-a-tool-message)."""
    system = user = assistant = merged_tools = 0
    previous = None
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            system += 1
        elif role == "user":
            user += 1
        elif role == "assistant":
            assistant += 1
        elif role == "tool" and previous == "tool":
            merged_tools += 1
        previous = role
    return len(messages), system, user, assistant, merged_tools


def _one_turn_per_message(messages: list[dict]) -> tuple[int, int]:
    # ChatML / Llama-3 / Phi-3: each message is a turn, plus the generation header. A template may
    # add a default system turn (SmolLM2, Llama-3.1's date header), may merge consecutive tool
    # results into one turn (Qwen), or may drop a system turn (Phi-3-mini).
    total, system, _, _, merged_tools = _roles(messages)
    # Only a leading `system` message stops a default system turn: SmolLM2's template adds its
    # own system turn before a leading `developer` message.
    first_is_system = bool(messages) and messages[0].get("role") == "system"
    low = total - merged_tools - system + 1
    high = total + 1 + (0 if first_is_system else 1)
    return low, high


def _system_folded(messages: list[dict]) -> tuple[int, int]:
    # Gemma: system text is folded into the first user turn; no tool role.
    total, system, _, _, merged_tools = _roles(messages)
    return total - system - merged_tools + 1, total - system + 1


def _user_turns_only(messages: list[dict]) -> tuple[int, int]:
    # Llama-2 / Mistral: one [INST] per user message; system is folded into a user turn.
    _, _, user, _, _ = _roles(messages)
    return user, user


def _user_and_assistant(messages: list[dict]) -> tuple[int, int]:
    # DeepSeek: <｜User｜> and <｜Assistant｜> tags; system text has no tag, tool output sits inside.
    _, _, user, assistant, _ = _roles(messages)
    return user + assistant + 1, user + assistant + 1


def _harmony(messages: list[dict]) -> tuple[int, int]:
    # gpt-oss: a default system turn always, a developer turn for instructions/tools, and an
    # assistant message may render as an analysis turn plus a final turn.
    total, system, _, assistant, _ = _roles(messages)
    return total - system + 2, total + 3 + assistant


def _tail(pattern: str) -> re.Pattern:
    return re.compile(f"(?:{pattern})\\Z")


FAMILIES: tuple[Family, ...] = (
    Family(
        "chatml",
        ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_sep|>"),
        ("<|im_start|>",),
        # Qwen3 with enable_thinking=false appends an empty think block: template-made, allowed.
        # Phi-4 separates role and text with <|im_sep|> instead of a newline.
        _tail(r"<\|im_start\|>assistant(?:\n|<\|im_sep\|>)(?:<think>\n(?:\n</think>\n\n)?)?"),
        _one_turn_per_message,
    ),
    Family(
        "llama3",
        (
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
            "<|python_tag|>",
            "<|finetune_right_pad_id|>",
        ),
        ("<|start_header_id|>",),
        _tail(r"<\|start_header_id\|>assistant<\|end_header_id\|>\n\n"),
        _one_turn_per_message,
    ),
    Family(
        "gemma",
        ("<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>"),
        ("<start_of_turn>",),
        _tail(r"<start_of_turn>model\n"),
        _system_folded,
    ),
    Family(
        "gpt-oss",
        (
            "<|start|>",
            "<|end|>",
            "<|message|>",
            "<|channel|>",
            "<|constrain|>",
            "<|return|>",
            "<|call|>",
            "<|startoftext|>",
        ),
        ("<|start|>",),
        _tail(r"<\|start\|>assistant"),
        _harmony,
    ),
    Family(
        "phi3",
        ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
        ("<|system|>", "<|user|>", "<|assistant|>"),
        _tail(r"<\|assistant\|>\n?"),
        _one_turn_per_message,
    ),
    Family(
        "deepseek",
        (
            "<｜begin▁of▁sentence｜>",
            "<｜end▁of▁sentence｜>",
            "<｜User｜>",
            "<｜Assistant｜>",
            "<｜tool▁calls▁begin｜>",
            "<｜tool▁calls▁end｜>",
            "<｜tool▁call▁begin｜>",
            "<｜tool▁call▁end｜>",
            "<｜tool▁outputs▁begin｜>",
            "<｜tool▁outputs▁end｜>",
            "<｜tool▁output▁begin｜>",
            "<｜tool▁output▁end｜>",
            "<｜tool▁sep｜>",
        ),
        ("<｜User｜>", "<｜Assistant｜>"),
        _tail(r"<｜Assistant｜>(?:<think>\n?)?"),
        _user_and_assistant,
    ),
    # Llama-2 and Mistral share [INST]; Mistral adds the bracketed tool and system markers.
    Family(
        "llama2-mistral",
        (
            "[INST]",
            "[/INST]",
            "<<SYS>>",
            "<</SYS>>",
            "[SYSTEM_PROMPT]",
            "[/SYSTEM_PROMPT]",
            "[TOOL_CALLS]",
            "[AVAILABLE_TOOLS]",
            "[/AVAILABLE_TOOLS]",
            "[TOOL_RESULTS]",
            "[/TOOL_RESULTS]",
            "[THINK]",
            "[/THINK]",
        ),
        ("[INST]",),
        _tail(r"\[/INST\] ?"),
        _user_turns_only,
    ),
)


def builtin_markers() -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for family in FAMILIES:
        for marker in family.markers:
            seen.setdefault(marker, None)
    return tuple(seen)
