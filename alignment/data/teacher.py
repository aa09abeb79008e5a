"""A teacher model at any OpenAI-compatible endpoint (vLLM, the deepguard engine, a hosted API)."""

from __future__ import annotations

import os

from tqdm.auto import tqdm

from alignment.openai_chat import chat_client, chat_text


class Teacher:
    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        key = api_key or os.environ.get("OPENAI_API_KEY", "")
        self.client = chat_client(self.base_url, key, timeout)

    def answer(self, prompt: str, max_tokens: int = 256, system: str | None = None) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        try:
            text = chat_text(
                self.client, self.model, messages, max_tokens=max_tokens, temperature=0
            )
        except RuntimeError as exc:
            raise RuntimeError(f"teacher: {exc}") from exc
        return text.strip()

    def answer_all(
        self, prompts: list[str], max_tokens: int = 256, desc: str = "teacher"
    ) -> list[str]:
        return [self.answer(p, max_tokens) for p in tqdm(prompts, desc=desc, unit="prompt")]
