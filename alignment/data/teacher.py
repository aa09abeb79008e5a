"""A teacher model at any OpenAI-compatible endpoint (vLLM, the deepguard engine, a hosted API)."""

from __future__ import annotations

import os

import httpx
from tqdm.auto import tqdm


class Teacher:
    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        key = api_key or os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(headers=headers, timeout=timeout)

    def answer(self, prompt: str, max_tokens: int = 256, system: str | None = None) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        response = self.client.post(
            f"{self.base_url}/chat/completions",
            json={
                "model": self.model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": 0,
            },
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"teacher at {self.base_url} answered HTTP {response.status_code}: {response.text[:200]}"
            )
        return (response.json()["choices"][0]["message"].get("content") or "").strip()

    def answer_all(
        self, prompts: list[str], max_tokens: int = 256, desc: str = "teacher"
    ) -> list[str]:
        return [self.answer(p, max_tokens) for p in tqdm(prompts, desc=desc, unit="prompt")]
