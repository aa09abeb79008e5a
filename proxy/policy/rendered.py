"""Check the prompt the upstream actually rendered (vLLM's `return_prompt_text`, first chunk).

Field rules cannot name prefill paths that do not exist yet (a new template variable, a renderer
change). The rendered prompt shows the result: it must end with the family's generation header
(nothing written after it) and hold the number of turns the messages should produce. A template
may add a default system turn (SmolLM2), fold the system text into a user turn (Gemma, Llama-2),
or merge consecutive tool results (Qwen): `families.py` gives the range each family allows.

Cost: a slice of the prompt's tail, one regex on it, and `str.count` (C speed) per turn marker.
"""

from __future__ import annotations

import re

from proxy.policy.context import PolicyContext
from proxy.policy.families import FAMILIES, Family
from proxy.policy.violation import RENDERED_PROMPT_MISMATCH, PolicyViolation

_TAIL_CHARS = 96  # longer than any generation header (with an empty think block)


def _mismatch(reason: str) -> PolicyViolation:
    return PolicyViolation(
        RENDERED_PROMPT_MISMATCH,
        f"The rendered prompt failed the prefill "
        f"check: {reason}. The request was stopped before any answer was sent.",
        None,
        "rendered_prompt",
    )


def detect_family(prompt_text: str) -> Family | None:
    tail = prompt_text[-_TAIL_CHARS:]
    for family in FAMILIES:
        if family.generation_header.search(tail):
            return family
    return None


def check_rendered_prompt(
    prompt_text: str | None,
    messages: list[dict],
    ctx: PolicyContext,
    prompt_token_ids: list | None = None,
) -> PolicyViolation | None:
    """None when the prompt ends with a generation header and holds the expected turns.

    Fails closed: an upstream that returns no rendered prompt gets a mismatch, not a pass. Where
    the upstream also returned the prompt's token ids and the served tokenizer gave the ids of
    the family's turn markers, the turns are counted in the ids too, and both counts must agree
    (text that looks like a marker but is not one, or a marker that does not show as text)."""
    if ctx.allow_prefill or not ctx.settings.check_rendered_prompt:
        return None  # a red-team prompt may end inside the assistant turn by design
    if type(prompt_text) is not str:
        return _mismatch(
            "the upstream did not return the rendered prompt (is it vLLM with "
            "return_prompt_text support?)"
        )
    header = ctx.settings.generation_header
    if header is not None:
        if prompt_text.endswith(header):
            return None
        return _mismatch("it does not end with the configured generation header")
    family = detect_family(prompt_text)
    if family is None:
        known = ", ".join(f.name for f in FAMILIES)
        return _mismatch(
            "it does not end with the generation header of a known template family "
            f"({known}); text after the header means the answer was prefilled "
            "(for a custom template set DEEPGUARD_POLICY_GENERATION_HEADER)"
        )
    turns = 0
    for marker in family.turn_markers:
        turns += prompt_text.count(marker)
    if prompt_token_ids is not None:
        mismatch = _check_token_ids(prompt_token_ids, family, turns, ctx)
        if mismatch is not None:
            return mismatch
    if family.name == "chatml":
        return _check_chatml_roles(prompt_text, messages)
    low, high = family.turn_range(messages)
    if not low <= turns <= high:
        return _mismatch(
            f"it holds {turns} {family.name} turns where {len(messages)} messages "
            f"should give {low}" + (f" to {high}" if high != low else "")
        )
    return None


def _check_token_ids(
    ids: object, family: Family, text_turns: int, ctx: PolicyContext
) -> PolicyViolation | None:
    if type(ids) is not list:
        return _mismatch("the upstream returned prompt token ids that are not a list")
    known = ctx.control_tokens.token_ids
    marker_ids = [known.get(m) for m in family.turn_markers]
    if not marker_ids or any(i is None for i in marker_ids):
        return None  # the served tokenizer did not give these markers' ids
    id_turns = 0
    for marker_id in marker_ids:
        id_turns += ids.count(marker_id)
    if id_turns != text_turns:
        return _mismatch(
            f"its token ids hold {id_turns} turn markers where its text holds {text_turns}"
        )
    return None


_CHATML_TURN = re.compile(r"<\|im_start\|>([^\n<]{0,32})")
# How a ChatML template may render each role: developer as system (or itself), a tool result as
# a tool turn or inside a user turn (Qwen).
_CHATML_ROLES = {
    "system": ("system",),
    "developer": ("developer", "system"),
    "user": ("user",),
    "assistant": ("assistant",),
    "tool": ("tool", "user"),
}


def _check_chatml_roles(prompt_text: str, messages: list[dict]) -> PolicyViolation | None:
    """ChatML turns are labelled with their role, so the check is exact: the rendered roles, in
    order, must be the messages' roles (a template may add one default system turn first and
    merge consecutive tool results), then the generation header. A turn smuggled in by any path
    is one role too many."""
    rendered = [role.strip() for role in _CHATML_TURN.findall(prompt_text)]
    expected_last = rendered.pop() if rendered else None  # the generation header's role
    if expected_last != "assistant":
        return _mismatch("its last ChatML turn is not the assistant's generation header")
    at = 0
    if (
        rendered
        and rendered[0] == "system"
        and (not messages or messages[0].get("role") != "system")
    ):
        at = 1  # the template's default system turn
    previous = None
    for message in messages:
        role = message.get("role")
        if (
            role == "tool"
            and previous == "tool"
            and (at >= len(rendered) or rendered[at] not in ("tool",))
        ):
            previous = role
            continue  # merged into the previous tool turn
        if at >= len(rendered) or rendered[at] not in _CHATML_ROLES.get(role, ()):
            got = rendered[at] if at < len(rendered) else "nothing"
            return _mismatch(
                f"its ChatML turns do not follow the messages (turn {at + 1} is "
                f"{got!r} where a {role!r} message should render)"
            )
        at += 1
        previous = role
    if at != len(rendered):
        return _mismatch(f"it holds {len(rendered) - at} more ChatML turns than the messages give")
    return None
