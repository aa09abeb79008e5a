"""OpenAI-shaped errors.

Every error a client sees is `{"error": {"message", "type", "param", "code"}}` with a string `code`.
Policy blocks are 400 with `x-should-retry: false` so the official client does not retry them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response


@dataclass
class APIError(Exception):
    """An error that becomes an OpenAI error body. Raise it anywhere below a route."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class JSON(Response):
    """A JSON response serialised with orjson (FastAPI deprecated its own ORJSONResponse)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
