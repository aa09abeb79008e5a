"""The OpenAI endpoints the proxy serves, one object each: what differs between
/v1/chat/completions and /v1/completions is said here once, not by comparing route strings.

An endpoint's request check (the prefill policy for its body), whether the upstream's rendered
prompt is checked and verified history kept (chat messages only), how the relay reads its stream
(`delta` chunks or `text` chunks) and how a non-streamed answer is assembled from the chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from proxy.aggregate import aggregate, aggregate_text
from proxy.policy import PolicyContext, check_chat_request, check_completions_request


@dataclass
class Endpoint:
    route: str
    check_request: Callable[[dict, PolicyContext], dict]  # the upstream body, or PolicyViolation
    relay_mode: Literal["chat", "text"]
    assemble: Callable[[list[dict], dict | None], dict]  # (chunks, usage) -> response body
    checks_rendered_prompt: bool
    keeps_history: bool


CHAT = Endpoint(
    route="/v1/chat/completions",
    check_request=check_chat_request,
    relay_mode="chat",
    assemble=aggregate,
    checks_rendered_prompt=True,
    keeps_history=True,
)
# Rejected by its policy unless the operator enables it (`policy.completions_enabled`).
COMPLETIONS = Endpoint(
    route="/v1/completions",
    check_request=check_completions_request,
    relay_mode="text",
    assemble=aggregate_text,
    checks_rendered_prompt=False,
    keeps_history=False,
)
