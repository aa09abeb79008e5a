"""POST /v1/chat/completions: validate a parsed body and rebuild the upstream body from the allowlist."""

from __future__ import annotations

from proxy.policy.context import PolicyContext
from proxy.policy.fields import CHAT_FIELDS, apply_rule, rule_for
from proxy.policy.messages import check_messages
from proxy.policy.validate import missing, short_repr, wrong_type
from proxy.policy.violation import MODEL_NOT_FOUND, PolicyViolation


def check_model(body: dict, ctx: PolicyContext) -> str:
    model = body.get("model")
    if model is None:
        raise missing("model")
    if type(model) is not str:
        raise wrong_type("model", "a string", model)
    if model != ctx.served_model:
        raise PolicyViolation(
            MODEL_NOT_FOUND,
            f"The model {short_repr(model)} does not exist on "
            f"this server; it serves {ctx.served_model!r}.",
            "model",
            "model_not_found",
            status=404,
        )
    return model


def check_chat_request(body: object, ctx: PolicyContext) -> dict:
    """Validate a parsed JSON body of POST /v1/chat/completions and return the body to send
    upstream, rebuilt from the allowlist. Raises PolicyViolation (never TypeError/KeyError).
    Client-supplied return_prompt_text / return_token_ids are dropped: the route sets its own."""
    if type(body) is not dict:
        raise wrong_type("body", "a JSON object", body)
    out = {"model": check_model(body, ctx), "messages": check_messages(body.get("messages"), ctx)}
    for name, value in body.items():
        if name == "model" or name == "messages":
            continue
        apply_rule(name, rule_for(name, CHAT_FIELDS), value, ctx, out)
    if "max_tokens" not in out and "max_completion_tokens" not in out:
        out["max_tokens"] = ctx.settings.default_max_tokens
    return out
