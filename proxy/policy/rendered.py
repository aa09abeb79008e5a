"""Check the prompt the upstream actually rendered (vLLM's `return_prompt_text`, first chunk).

Field rules cannot name prefill paths that do not exist yet (a new template variable, a renderer
change). The rendered prompt shows the result: it must end with the family's generation header
(nothing written after it) and hold the number of turns the messages should produce. A template
may add a default system turn (SmolLM2), fold the system text into a user turn (Gemma, Llama-2),
or merge consecutive tool results (Qwen): `families.py` gives the range each family allows.

Cost: a slice of the prompt's tail, one regex on it, and `str.count` (C speed) per turn marker.
"""

from __future__ import annotations

from proxy.policy.context import PolicyContext
from proxy.policy.families import FAMILIES, Family
from proxy.policy.violation import RENDERED_PROMPT_MISMATCH, PolicyViolation

_TAIL_CHARS = 96   # longer than any generation header (with an empty think block)


def _mismatch(reason: str) -> PolicyViolation:
    return PolicyViolation(RENDERED_PROMPT_MISMATCH, f"The rendered prompt failed the prefill "
                           f"check: {reason}. The request was stopped before any answer was sent.",
                           None, "rendered_prompt")


def detect_family(prompt_text: str) -> Family | None:
    tail = prompt_text[-_TAIL_CHARS:]
    for family in FAMILIES:
        if family.generation_header.search(tail):
            return family
    return None


def check_rendered_prompt(prompt_text: str, messages: list[dict],
                          ctx: PolicyContext) -> PolicyViolation | None:
    """None when the prompt ends with a generation header and holds the expected turns."""
    if ctx.allow_prefill or not ctx.settings.check_rendered_prompt:
        return None   # a red-team prompt may end inside the assistant turn by design
    header = ctx.settings.generation_header
    if header is not None:
        if prompt_text.endswith(header):
            return None
        return _mismatch("it does not end with the configured generation header")
    family = detect_family(prompt_text)
    if family is None:
        known = ", ".join(f.name for f in FAMILIES)
        return _mismatch("it does not end with the generation header of a known template family "
                         f"({known}); text after the header means the answer was prefilled "
                         "(for a custom template set DEEPGUARD_POLICY_GENERATION_HEADER)")
    turns = 0
    for marker in family.turn_markers:
        turns += prompt_text.count(marker)
    low, high = family.turn_range(messages)
    if not low <= turns <= high:
        return _mismatch(f"it holds {turns} {family.name} turns where {len(messages)} messages "
                         f"should give {low}" + (f" to {high}" if high != low else ""))
    return None
