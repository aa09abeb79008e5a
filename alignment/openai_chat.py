"""Every HTTP call of the alignment module (LLM judge, endpoint generator, teacher) goes through
the official `openai` SDK: each request has a timeout, and connection errors, 408/409/429 and 5xx
answers are retried with exponential backoff (`max_retries` times) before they fail the run."""

from __future__ import annotations

from typing import Any

import openai

MAX_RETRIES = 2  # the SDK default, said explicitly: 0.5 s then 1 s backoff (with jitter)


def chat_client(
    base_url: str, api_key: str = "EMPTY", timeout: float = 120.0, max_retries: int = MAX_RETRIES
) -> openai.OpenAI:
    """A client for one OpenAI-compatible server (`base_url` ends in /v1)."""
    return openai.OpenAI(
        base_url=base_url.rstrip("/"),
        api_key=api_key or "EMPTY",
        timeout=timeout,
        max_retries=max_retries,
    )


def chat_text(
    client: openai.OpenAI,
    model: str,
    messages: list[dict],
    extra_body: dict | None = None,
    **params: Any,
) -> str:
    """The first choice's text of one non-streamed chat completion. `params` are OpenAI request
    fields (max_tokens, temperature, ...); `extra_body` holds server extensions (vLLM's
    `continue_final_message`). An error answer, after the retries, raises RuntimeError."""
    try:
        completion = client.chat.completions.create(
            model=model, messages=messages, extra_body=extra_body, **params
        )
    except openai.APIStatusError as exc:
        raise RuntimeError(
            f"{client.base_url} answered {exc.status_code}: {exc.response.text[:300]}"
        ) from exc
    return completion.choices[0].message.content or ""
