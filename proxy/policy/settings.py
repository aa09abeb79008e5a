"""Operator knobs of the prefill policy (embedded as `Settings.policy`, env DEEPGUARD_POLICY_<FIELD>).

Defaults are the safe ones from attack-surface.md: nobody may prefill, /v1/completions is off,
only text content, tool_choice none/auto. Per-key prefill grants live in the auth settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

KNOWN_PART_TYPES = ("text", "image_url", "input_audio", "video_url", "file")


class PolicySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    # Caps on sampling fields: best-of-N and long generations are attack multipliers.
    max_tokens_cap: int = Field(4096, gt=0)
    # Sent upstream when the client sets neither max_tokens nor max_completion_tokens; without
    # it the upstream may generate up to its context length.
    default_max_tokens: int = Field(1024, gt=0)
    # repetition_penalty also acts on the prompt's tokens: far from 1 it is a weak logit_bias
    # (above 1 it pushes away from the words of a refusal seen in the prompt, below 1 it pulls
    # the model towards repeating client text). Accepted range: [1.0, this].
    max_repetition_penalty: float = Field(1.2, ge=1.0, le=2.0)
    # Log-probabilities of the first tokens of an answer tell an automated attacker how close
    # the model is to complying (P("Sure") at token 0): they are withheld (null) for this many
    # tokens of every choice; later tokens get theirs. 0 = never withheld.
    logprobs_withheld_tokens: int = Field(8, ge=0)
    max_n: int = Field(4, ge=1)
    # top_logprobs (chat) and logprobs (completions) above this are rejected; -1 ("all") always is.
    max_top_logprobs: int = Field(5, ge=0)
    max_messages: int = Field(512, ge=1)
    max_stop_sequences: int = Field(8, ge=0)
    # Content part types a message may hold. Only text is rendered safely by every template.
    allowed_content_part_types: list[str] = Field(default_factory=lambda: ["text"])
    # chat_template_kwargs keys a client may set (each value must be a plain scalar).
    allowed_chat_template_kwargs: list[str] = Field(default_factory=lambda: ["enable_thinking"])
    # Tool names a client may define; None = any tool definition (tool_choice is still limited).
    allowed_tool_names: list[str] | None = None
    # tool_choice values accepted. "required" and named tools force the start of the answer.
    allowed_tool_choices: list[str] = Field(default_factory=lambda: ["none", "auto"])
    # response_format json_schema (forcing keywords are rejected either way).
    allow_json_schema: bool = True
    # vLLM's `documents` (RAG documents rendered by some templates).
    allow_documents: bool = False
    # /v1/completions takes a raw prompt: every request can be a hand-built prefill.
    completions_enabled: bool = False
    # Extra control-token strings to reject, on top of the tokenizer's and the built-in table.
    extra_control_tokens: list[str] = Field(default_factory=list)
    # For templates of no known family: the exact text the rendered prompt must end with.
    generation_header: str | None = None
    # Check the upstream's rendered prompt in the first chunk (return_prompt_text).
    check_rendered_prompt: bool = True
    # The served tokenizer must be readable at start-up (its special tokens are scanned for and
    # its token ids checked in the rendered prompt). False = start with the built-in table only.
    require_tokenizer: bool = True
    # `verified`: an assistant turn in a request is accepted only if this deployment wrote that
    # exact text for the same API key (see proxy/history.py); `open`: any history is accepted.
    history: str = Field("open", pattern="^(open|verified)$")

    @field_validator("default_max_tokens")
    @classmethod
    def _default_within_cap(cls, value: int, info) -> int:
        cap = info.data.get("max_tokens_cap")
        if cap is not None and value > cap:
            raise ValueError(f"default_max_tokens ({value}) must not exceed max_tokens_cap ({cap})")
        return value

    @field_validator("allowed_content_part_types")
    @classmethod
    def _known_part_types(cls, types: list[str]) -> list[str]:
        unknown = sorted(set(types) - set(KNOWN_PART_TYPES))
        if unknown:
            raise ValueError(
                f"unknown content part types {unknown}; known: {list(KNOWN_PART_TYPES)}"
            )
        if "text" not in types:
            raise ValueError("allowed_content_part_types must include 'text'")
        return types

    @field_validator("allowed_tool_choices")
    @classmethod
    def _known_tool_choices(cls, choices: list[str]) -> list[str]:
        unknown = sorted(set(choices) - {"none", "auto", "required", "named"})
        if unknown:
            raise ValueError(
                f"unknown tool_choice values {unknown}; known: none, auto, required, named"
            )
        return choices

    @field_validator("extra_control_tokens")
    @classmethod
    def _non_empty_tokens(cls, tokens: list[str]) -> list[str]:
        if any(not t.strip() for t in tokens):
            raise ValueError("extra_control_tokens must not hold empty or blank strings")
        return tokens
