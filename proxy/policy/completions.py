"""POST /v1/completions, only when the operator enables it (`completions_enabled`).

A raw prompt has no template between the client and the model, so any request can be a
hand-built prefill; enabling it is a deliberate choice. Even then, control tokens in the prompt
and prompts given as token ids (which skip the tokenizer and every text check) are rejected.
"""

from __future__ import annotations

from proxy.policy.chat import check_model
from proxy.policy.context import PolicyContext
from proxy.policy.control_tokens import reject_control_tokens
from proxy.policy.fields import COMPLETION_FIELDS, apply_rule, rule_for
from proxy.policy.validate import invalid, missing, wrong_type
from proxy.policy.violation import ENDPOINT_DISABLED, TOKEN_IDS_PROMPT, PolicyViolation

MAX_PROMPTS = 16


def check_completions_request(body: object, ctx: PolicyContext) -> dict:
    """Validate a parsed JSON body of POST /v1/completions; return the upstream body."""
    if not ctx.settings.completions_enabled:
        raise PolicyViolation(
            ENDPOINT_DISABLED,
            "/v1/completions is disabled on this server: a raw "
            "prompt can write the start of the answer. Use /v1/chat/completions.",
            None,
            "endpoint_disabled",
        )
    if type(body) is not dict:
        raise wrong_type("body", "a JSON object", body)
    out = {"model": check_model(body, ctx), "prompt": _check_prompt(body.get("prompt"), ctx)}
    for name, value in body.items():
        if name == "model" or name == "prompt":
            continue
        apply_rule(name, rule_for(name, COMPLETION_FIELDS), value, ctx, out)
    out.setdefault("max_tokens", ctx.settings.default_max_tokens)
    return out


def _token_ids(param: str) -> PolicyViolation:
    return PolicyViolation(
        TOKEN_IDS_PROMPT,
        f"`{param}` is given as token ids; token ids skip "
        "every text check, so only text prompts are accepted.",
        param,
        "token_ids_prompt",
    )


def _check_prompt(prompt: object, ctx: PolicyContext) -> str | list[str]:
    if prompt is None:
        raise missing("prompt")
    if type(prompt) is str:
        reject_control_tokens(prompt, "prompt", ctx.control_tokens)
        return prompt
    if type(prompt) is not list:
        raise wrong_type("prompt", "a string or an array of strings", prompt)
    if not prompt:
        raise invalid("prompt", "`prompt` must not be empty.")
    if len(prompt) > MAX_PROMPTS:
        raise invalid("prompt", f"`prompt` holds {len(prompt)} prompts; at most {MAX_PROMPTS}.")
    for index, item in enumerate(prompt):
        param = f"prompt[{index}]"
        if type(item) is int or type(item) is list:
            raise _token_ids("prompt" if type(item) is int else param)
        if type(item) is not str:
            raise wrong_type(param, "a string", item)
        reject_control_tokens(item, param, ctx.control_tokens)
    return prompt
