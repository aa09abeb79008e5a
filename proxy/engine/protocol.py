"""Request model for `POST /v1/chat/completions`: the OpenAI fields the engine honours plus the
vLLM extensions the proxy relies on. Unknown fields are ignored, as vLLM does by default."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from proxy.errors import APIError, bad_request


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # OpenAI fields, in the order of the OpenAI reference.
    messages: list[Message] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=16)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    # vLLM extensions.
    add_generation_prompt: bool | None = None
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None
    return_token_ids: bool = False
    return_prompt_text: bool = False

    @model_validator(mode="after")
    def _check_prompt_mode(self) -> ChatRequest:
        if self.continue_final_message and self.add_generation_prompt:
            raise ValueError("add_generation_prompt: cannot set both `continue_final_message` "
                             "and `add_generation_prompt` to true")
        return self

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def generation_prompt(self) -> bool:
        """vLLM's default is true; continuing the final message implies false here."""
        if self.add_generation_prompt is None:
            return not self.continue_final_message
        return self.add_generation_prompt

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body; bad input becomes a 400 naming the offending parameter."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        param = location[0] if location else None
        if param is None and ": " in message:  # model validators name the field first
            param, message = message.split(": ", 1)
        where = ".".join(location)
        raise bad_request(f"{where}: {message}" if where else message, param=param) from None


def model_not_found(name: str) -> APIError:
    return APIError(404, f"The model `{name}` does not exist.", "NotFoundError", "model",
                    "model_not_found")
