"""What a prefill looks like in a body sent upstream. Used by the unit and end-to-end property tests
to check the policy's output (or what the stub upstream recorded), independently of the policy code."""

from __future__ import annotations

from proxy.policy.families import builtin_markers

MARKERS = builtin_markers()
ROLES = {"system", "developer", "user", "assistant", "tool"}
FORCING_FIELDS = (
    "chat_template",
    "kv_transfer_params",
    "ec_transfer_params",
    "structured_outputs",
    "structural_tag",
    "logit_bias",
    "bad_words",
    "allowed_token_ids",
    "truncate_prompt_tokens",
    "prompt_logprobs",
    "echo",
    "documents",
)


def _strings(value, depth=0):
    if depth > 80:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, depth + 1)


def _forcing_schema(schema, depth=0) -> bool:
    if depth > 80:
        return False
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("pattern", "patternProperties"):
                return True
            if key in ("const", "default") and isinstance(value, (str, list, dict)):
                return True
            if key == "enum" and (
                not isinstance(value, list) or any(isinstance(v, (str, list, dict)) for v in value)
            ):
                return True
            if _forcing_schema(value, depth + 1):
                return True
    elif isinstance(schema, list):
        return any(_forcing_schema(v, depth + 1) for v in schema)
    return False


def prefill_shape(body: dict) -> str | None:
    """A short description of the first prefill shape in an upstream body, or None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no messages"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"messages[{i}] has a role outside the allowed five"
    if messages[-1].get("role") not in ("user", "tool"):
        return f"trailing {messages[-1].get('role')} message"
    if body.get("continue_final_message") is True:
        return "continue_final_message"
    if body.get("add_generation_prompt") is False:
        return "add_generation_prompt false"
    for field in FORCING_FIELDS:
        if body.get(field) not in (None, False, {}, []):
            return field
    if any(k.startswith("guided_") for k in body):
        return "guided decoding"
    if body.get("min_tokens") or body.get("ignore_eos"):
        return "min_tokens / ignore_eos"
    if body.get("tool_choice") not in (None, "none", "auto"):
        return "forced tool choice"
    kwargs = body.get("chat_template_kwargs") or {}
    if set(kwargs) - {"enable_thinking"}:
        return "template kwargs"
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in ("text", "json_object", "json_schema"):
        return "structured response_format"
    if isinstance(fmt, dict) and _forcing_schema(fmt.get("json_schema")):
        return "forcing json schema"
    for field in ("messages", "tools", "chat_template_kwargs", "tool_choice"):
        for text in _strings(body.get(field)):
            for marker in MARKERS:
                if marker in text:
                    return f"control token {marker!r} in {field}"
    return None
