"""Routes vLLM offers that the proxy deliberately does not pass through.

Each answers with an OpenAI-shaped error that says why, instead of a bare 404, so a developer
migrating from plain vLLM learns what to use. See docs/policy.md.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from proxy.errors import APIError

router = APIRouter()

REASONS = {
    "/v1/responses": "the Responses API can continue an in-progress assistant item (a prefill); "
    "use /v1/chat/completions",
    "/v1/messages": "the Messages API treats a trailing assistant turn as a prefill; use "
    "/v1/chat/completions",
}
# Never exposed: template reconnaissance, arbitrary token prompts, weight swaps.
INTERNAL = (
    "/tokenize",
    "/detokenize",
    "/tokenizer_info",
    "/invocations",
    "/pause",
    "/resume",
    "/update_weights",
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
    "/inference/v1/generate",
    "/pooling",
    "/classify",
    "/score",
    "/rerank",
)


def _disabled(path: str, reason: str):
    async def handler(request: Request) -> None:
        raise APIError(
            404,
            f"{path} is disabled by the deepguard policy: {reason}",
            param=None,
            code="endpoint_disabled",
            headers={"x-should-retry": "false"},
        )

    return handler


for _path, _reason in REASONS.items():
    router.add_api_route(
        _path, _disabled(_path, _reason), methods=["POST", "GET"], include_in_schema=False
    )
for _path in INTERNAL:
    router.add_api_route(
        _path,
        _disabled(_path, "internal model-server route"),
        methods=["POST", "GET"],
        include_in_schema=False,
    )
