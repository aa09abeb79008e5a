"""Roles, structure and content of `messages`: the part of the request the template renders.

Rules (attack-surface.md):
- roles are system, developer, user, assistant, tool: vLLM accepts any string as role, and a
  template may map an unknown one to a real model turn (Gemma's `model`);
- the last message is `user`, or `tool` answering the preceding assistant's tool call: a trailing
  assistant message is a prefill (or forged history), unless the API key may prefill;
- content is text (plus part types the operator enables); every string the template sees is
  scanned for control tokens;
- each message is rebuilt from its allowed keys, so unknown keys never reach the upstream.
"""

from __future__ import annotations

import orjson

from proxy.policy.context import PolicyContext
from proxy.policy.control_tokens import reject_control_tokens, reject_control_tokens_in_json
from proxy.policy.validate import (
    expect_dict,
    expect_list,
    expect_str,
    invalid,
    missing,
    short_repr,
    wrong_type,
)
from proxy.policy.violation import (
    ASSISTANT_PREFILL,
    FORBIDDEN_PARAMETER,
    INVALID_MESSAGE_ORDER,
    INVALID_ROLE,
    UNKNOWN_PARAMETER,
    UNSUPPORTED_CONTENT_TYPE,
    VALUE_OUT_OF_RANGE,
    PolicyViolation,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
# Keys the template may render, per role.
_COMMON_KEYS = ("role", "content", "name")
_ALLOWED_KEYS = {
    "system": _COMMON_KEYS,
    "developer": _COMMON_KEYS,
    "user": _COMMON_KEYS,
    "assistant": _COMMON_KEYS + ("tool_calls", "reasoning_content", "reasoning"),
    "tool": _COMMON_KEYS + ("tool_call_id",),
}
# Keys an assistant message carries when a client appends the SDK's response message as history;
# vLLM does not render them, so they are dropped (function_call only when null).
_DROPPED_ASSISTANT_KEYS = ("refusal", "annotations", "audio")


def check_messages(value: object, ctx: PolicyContext) -> list[dict]:
    if value is None:
        raise missing("messages")
    messages = expect_list(value, "messages")
    if not messages:
        raise invalid("messages", "`messages` must hold at least one message.")
    if len(messages) > ctx.settings.max_messages:
        raise PolicyViolation(
            VALUE_OUT_OF_RANGE,
            f"`messages` holds {len(messages)} messages; "
            f"at most {ctx.settings.max_messages} are allowed.",
            "messages",
        )
    rebuilt = [_check_message(m, i, ctx) for i, m in enumerate(messages)]
    _check_order(rebuilt, ctx)
    return rebuilt


def _check_message(message: object, index: int, ctx: PolicyContext) -> dict:
    where = f"messages[{index}]"
    message = expect_dict(message, where)
    role = message.get("role")
    if role is None:
        raise missing(f"{where}.role")
    if type(role) is not str:
        raise wrong_type(f"{where}.role", "a string", role)
    if role not in _ALLOWED_KEYS:
        raise PolicyViolation(
            INVALID_ROLE,
            f"`{where}.role` must be one of {', '.join(ROLES)}; got {short_repr(role)}.",
            f"{where}.role",
            "role",
        )
    allowed = _ALLOWED_KEYS[role]
    find = ctx.control_tokens
    out = {"role": role}
    for key, item in message.items():
        if key in allowed:
            if key == "role" or item is None:
                continue
            if key == "content":
                out[key] = _check_content(item, f"{where}.content", ctx)
            elif key == "tool_calls":
                out[key] = _check_tool_calls(item, f"{where}.tool_calls", ctx)
            else:  # name, tool_call_id, reasoning_content, reasoning: plain rendered strings
                reject_control_tokens(expect_str(item, f"{where}.{key}"), f"{where}.{key}", find)
                out[key] = item
        elif role == "assistant" and key in _DROPPED_ASSISTANT_KEYS:
            continue
        elif role == "assistant" and key == "function_call":
            if item is not None:
                raise PolicyViolation(
                    FORBIDDEN_PARAMETER,
                    f"`{where}.function_call` is the "
                    "deprecated function-calling format; use `tool_calls`.",
                    f"{where}.function_call",
                    "deprecated_functions",
                )
        else:
            raise PolicyViolation(
                UNKNOWN_PARAMETER,
                f"`{where}.{key}` is not an accepted field of "
                f"a {role} message (accepted: {', '.join(allowed)}).",
                f"{where}.{key}",
                "unknown_parameter",
            )
    if "content" not in out and not (role == "assistant" and out.get("tool_calls")):
        raise missing(f"{where}.content")
    return out


def _check_content(content: object, where: str, ctx: PolicyContext) -> str | list:
    if type(content) is str:
        reject_control_tokens(content, where, ctx.control_tokens)
        return content
    if type(content) is not list:
        raise wrong_type(where, "a string or an array of content parts", content)
    allowed_types = ctx.settings.allowed_content_part_types
    parts = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        part = expect_dict(part, at)
        kind = part.get("type")
        if type(kind) is not str:
            raise (
                wrong_type(f"{at}.type", "a string", kind)
                if kind is not None
                else missing(f"{at}.type")
            )
        if kind not in allowed_types:
            raise PolicyViolation(
                UNSUPPORTED_CONTENT_TYPE,
                f"`{at}.type`: content parts of type "
                f"{short_repr(kind)} are not accepted here (accepted: "
                f"{', '.join(allowed_types)}).",
                f"{at}.type",
                "content_type",
            )
        if kind == "text":
            extra = set(part) - {"type", "text"}
            if extra:
                key = sorted(extra)[0]
                raise PolicyViolation(
                    UNKNOWN_PARAMETER,
                    f"`{at}.{key}` is not an accepted field of a text part (accepted: type, text).",
                    f"{at}.{key}",
                    "unknown_parameter",
                )
            text = part.get("text")
            if text is None:
                raise missing(f"{at}.text")
            reject_control_tokens(expect_str(text, f"{at}.text"), f"{at}.text", ctx.control_tokens)
            parts.append({"type": "text", "text": text})
        else:
            # Operator-enabled media parts: the template renders a placeholder, not their strings.
            # Still bounded (depth) and scanned, so nothing passed here can fail to encode later.
            reject_control_tokens_in_json(part, at, ctx.control_tokens)
            parts.append(part)
    texts = [p["text"] for p in parts if p.get("type") == "text"]
    if len(texts) > 1:
        # A template that loops over parts may print them back to back: a token split across
        # two parts ("<|im_" + "start|>") would be whole again in the prompt.
        reject_control_tokens("".join(texts), where, ctx.control_tokens)
    return parts


def _check_tool_calls(value: object, where: str, ctx: PolicyContext) -> list[dict]:
    calls = []
    for index, call in enumerate(expect_list(value, where)):
        at = f"{where}[{index}]"
        call = expect_dict(call, at)
        call_id = call.get("id")
        if call_id is None:
            raise missing(f"{at}.id")
        reject_control_tokens(expect_str(call_id, f"{at}.id"), f"{at}.id", ctx.control_tokens)
        if call.get("type", "function") != "function":
            raise invalid(f"{at}.type", f"`{at}.type` must be 'function'.")
        function = call.get("function")
        if function is None:
            raise missing(f"{at}.function")
        function = expect_dict(function, f"{at}.function")
        out_function = {}
        for key in ("name", "arguments"):
            text = function.get(key)
            if text is None:
                raise missing(f"{at}.function.{key}")
            reject_control_tokens(
                expect_str(text, f"{at}.function.{key}"), f"{at}.function.{key}", ctx.control_tokens
            )
            out_function[key] = text
        _check_arguments(out_function["arguments"], f"{at}.function.arguments", ctx)
        calls.append({"id": call_id, "type": "function", "function": out_function})
    return calls


def _check_arguments(arguments: str, where: str, ctx: PolicyContext) -> None:
    """The server JSON-decodes tool-call arguments before the template renders them, so
    `\\u003c|im_start|\\u003e` in the raw text becomes a real control token: scan the decoded
    values (keys included), not only the raw string."""
    try:
        decoded = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise invalid(
            where, f"`{where}` must be a JSON document (the server decodes it before rendering)."
        ) from None
    reject_control_tokens_in_json(decoded, where, ctx.control_tokens)


def _check_order(messages: list[dict], ctx: PolicyContext) -> None:
    """Tool results answer a tool call; the conversation ends on the user's (or a tool's) turn."""
    open_calls: set[str] = set()  # ids of the latest assistant tool calls not yet answered
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id is None:
                raise missing(f"messages[{index}].tool_call_id")
            if call_id not in open_calls:
                raise PolicyViolation(
                    INVALID_MESSAGE_ORDER,
                    f"`messages[{index}]` is a tool result "
                    f"for {short_repr(call_id)}, but the assistant message "
                    "before it made no tool call with that id.",
                    f"messages[{index}].tool_call_id",
                    "message_order",
                )
            open_calls.discard(call_id)
        elif role == "assistant":
            open_calls = {c["id"] for c in message.get("tool_calls", ())}
        else:
            open_calls = set()
    last = len(messages) - 1
    role = messages[last]["role"]
    if role == "assistant" and not ctx.allow_prefill:
        raise PolicyViolation(
            ASSISTANT_PREFILL,
            f"The last message (`messages[{last}]`) has role 'assistant'. Writing the start of the "
            "answer (prefill) is not allowed with this API key; end the conversation with a user "
            "message.",
            f"messages[{last}]",
            "assistant_prefill",
        )
    if role in ("system", "developer"):
        raise PolicyViolation(
            INVALID_MESSAGE_ORDER,
            f"The last message (`messages[{last}]`) has role {role!r}; the conversation must end "
            "with a user message (or a tool result).",
            f"messages[{last}].role",
            "message_order",
        )
