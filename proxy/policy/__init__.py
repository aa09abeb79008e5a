"""The prefill policy: pure functions over a parsed request (no I/O, no FastAPI).

Where the rules are:
  fields.py          the allowlist of top-level fields, the action for each, and why
  messages.py        roles, message order (no trailing assistant), content parts
  tools.py           tool definitions and tool_choice
  schema.py          response_format and the schema keywords that force text
  control_tokens.py  the control-token scanner (tokenizer specials + families.py table)
  families.py        known chat-template families: markers and generation headers
  rendered.py        the check of the upstream's rendered prompt
  chat.py / completions.py   the entry points
"""

from proxy.policy.chat import check_chat_request
from proxy.policy.completions import check_completions_request
from proxy.policy.context import PolicyContext, build_context
from proxy.policy.control_tokens import ControlTokenMatcher
from proxy.policy.rendered import check_rendered_prompt
from proxy.policy.settings import PolicySettings
from proxy.policy.violation import PolicyViolation

__all__ = [
    "ControlTokenMatcher",
    "PolicyContext",
    "PolicySettings",
    "PolicyViolation",
    "build_context",
    "check_chat_request",
    "check_completions_request",
    "check_rendered_prompt",
]
