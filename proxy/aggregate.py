"""Non-streamed answers: the client chunks of one answer (after the relay and its watch) folded
into one chat.completion or text_completion body, as the OpenAI API returns it."""

from __future__ import annotations

from typing import Any


def aggregate_text(chunks: list[dict], usage: dict | None) -> dict:
    """Build a non-streamed text_completion from the client chunks of one answer."""
    base = chunks[0] if chunks else {}
    texts: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts.setdefault(choice["index"], []).append(choice.get("text") or "")
            if choice.get("finish_reason"):
                finish[choice["index"]] = choice["finish_reason"]
    body = {
        "id": base.get("id"),
        "object": "text_completion",
        "created": base.get("created"),
        "model": base.get("model"),
        "choices": [
            {
                "index": i,
                "text": "".join(texts[i]),
                "logprobs": None,
                "finish_reason": finish.get(i, "stop"),
            }
            for i in sorted(texts)
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def aggregate(chunks: list[dict], usage: dict | None) -> dict:
    """Build a non-streamed chat.completion from the client chunks of one answer."""
    base = chunks[0] if chunks else {}
    by_index: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            entry = by_index.setdefault(
                choice["index"],
                {
                    "content": [],
                    "tool_calls": {},
                    "finish_reason": None,
                    "logprobs": [],
                    "extra": {},
                },
            )
            delta = choice["delta"]
            if delta.get("content"):
                entry["content"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = entry["tool_calls"].setdefault(
                    call.get("index", 0),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            for key in ("reasoning_content", "reasoning", "refusal"):
                if delta.get(key):
                    entry["extra"][key] = entry["extra"].get(key, "") + delta[key]
            lp = choice.get("logprobs")
            if isinstance(lp, dict) and lp.get("content"):
                entry["logprobs"].extend(lp["content"])
            if choice.get("finish_reason"):
                entry["finish_reason"] = choice["finish_reason"]
    choices = []
    for index in sorted(by_index):
        entry = by_index[index]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(entry["content"])}
        if entry["tool_calls"]:
            message["tool_calls"] = [entry["tool_calls"][i] for i in sorted(entry["tool_calls"])]
            if not message["content"]:
                message["content"] = None
        message.update(entry["extra"])
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": {"content": entry["logprobs"]} if entry["logprobs"] else None,
                "finish_reason": entry["finish_reason"] or "stop",
            }
        )
    body = {
        "id": base.get("id"),
        "object": "chat.completion",
        "created": base.get("created"),
        "model": base.get("model"),
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return body
