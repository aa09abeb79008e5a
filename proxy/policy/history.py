"""Verified history (`policy.history: verified`): which assistant turns of a request must have
been written by this deployment, and the keyed digest that identifies each one.

A made-up assistant turn ("Sure, here is how ... step 1") followed by a user "continue" is a
prefill one turn back: the model reads the forged turn as its own and carries on. Checking only
the last role cannot see it. With verified history, every assistant turn a client sends back must
be text this deployment gave that same API key: when an answer finishes, the proxy records a
keyed digest (HMAC-SHA256 with a server secret) of each field the client received; a request
whose assistant turn has a field with no record is rejected (`unverified_assistant_turn`).

Pure functions: the digests are computed here, the records live in `proxy/history.py`.
"""

from __future__ import annotations

import hashlib
import hmac

from proxy.policy.violation import PolicyViolation

UNVERIFIED_ASSISTANT_TURN = "unverified_assistant_turn"
# Fields of an assistant message whose text the model wrote (a client sends them back as is).
TEXT_FIELDS = ("content", "reasoning_content", "reasoning")


def _text(value: object) -> str:
    if type(value) is str:
        return value
    if type(value) is list:  # content parts (the policy already checked they are text parts)
        return "".join(p.get("text", "") for p in value if type(p) is dict)
    return ""


def message_records(message: dict) -> list[bytes]:
    """The canonical byte strings of one assistant message: one per non-empty text field, one
    per tool call (name and arguments; ids are the server's and are not checked)."""
    records = []
    for key in TEXT_FIELDS:
        text = _text(message.get(key))
        if text:
            records.append(b"t\0" + text.encode("utf-8", "surrogatepass"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        name, arguments = function.get("name") or "", function.get("arguments") or ""
        records.append(
            b"c\0"
            + name.encode("utf-8", "surrogatepass")
            + b"\0"
            + arguments.encode("utf-8", "surrogatepass")
        )
    return records


def digest(secret: bytes, key_id: str, record: bytes) -> bytes:
    """The keyed digest of one record for one API key: without the secret nobody can make one,
    and a digest recorded for one key says nothing for another."""
    return hmac.new(
        secret, key_id.encode("utf-8", "surrogatepass") + b"\0" + record, hashlib.sha256
    ).digest()


def turns_to_verify(
    messages: list[dict], secret: bytes, key_id: str
) -> list[tuple[int, list[bytes]]]:
    """(message index, digests) of every assistant turn that carries model text."""
    out = []
    for index, message in enumerate(messages):
        if message.get("role") == "assistant":
            digests = [digest(secret, key_id, r) for r in message_records(message)]
            if digests:
                out.append((index, digests))
    return out


def unverified(index: int) -> PolicyViolation:
    return PolicyViolation(
        UNVERIFIED_ASSISTANT_TURN,
        f"`messages[{index}]` is an assistant turn this server did not write for this API key "
        "(or its record has expired). Send assistant turns back exactly as they were received; "
        "made-up assistant turns are not accepted.",
        f"messages[{index}]",
        "forged_history",
    )
