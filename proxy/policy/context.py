"""What the policy needs to know besides the request: settings, control tokens, model, key grant."""

from __future__ import annotations

import os
from dataclasses import dataclass

from proxy.policy.control_tokens import ControlTokenMatcher
from proxy.policy.settings import PolicySettings


@dataclass(frozen=True)
class PolicyContext:
    settings: PolicySettings
    control_tokens: ControlTokenMatcher
    served_model: str
    allow_prefill: bool = False  # per-key grant (red team); resolved by the route from the API key


def build_context(
    settings: PolicySettings, served_model: str, tokenizer_path: str | os.PathLike | None
) -> tuple[PolicyContext, str]:
    """The context for ordinary keys, and the one start-up log line saying where tokens came from.
    For a red-team key use `dataclasses.replace(ctx, allow_prefill=True)`."""
    matcher, source = ControlTokenMatcher.from_model_dir(
        tokenizer_path, extra=settings.extra_control_tokens
    )
    return PolicyContext(settings, matcher, served_model), source
