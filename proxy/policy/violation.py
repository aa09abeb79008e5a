"""The one error type of the policy, and the names it uses.

A `PolicyViolation` carries everything the OpenAI error body needs (status, code, param, message)
plus a low-cardinality `vector` for the `deepguard_policy_rejections_total` metric. The policy
never imports FastAPI: the route turns a violation into an HTTP answer with `as_api_error()`.
"""

from __future__ import annotations

from proxy.errors import APIError

# Codes a client can see in `error.code` (docs/policy.md explains each one).
ASSISTANT_PREFILL = "assistant_prefill_rejected"
CONTROL_TOKEN = "control_token_in_content"
FORBIDDEN_PARAMETER = "forbidden_parameter"
FORBIDDEN_SCHEMA_KEYWORD = "forbidden_schema_keyword"
UNKNOWN_PARAMETER = "unknown_parameter"
INVALID_TYPE = "invalid_type"
INVALID_VALUE = "invalid_value"
VALUE_OUT_OF_RANGE = "value_out_of_range"
MISSING_PARAMETER = "missing_required_parameter"
INVALID_ROLE = "invalid_role"
INVALID_MESSAGE_ORDER = "invalid_message_order"
UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
TOOL_NOT_ALLOWED = "tool_not_allowed"
TOKEN_IDS_PROMPT = "token_ids_prompt_rejected"
ENDPOINT_DISABLED = "endpoint_disabled"
MODEL_NOT_FOUND = "model_not_found"
RENDERED_PROMPT_MISMATCH = "rendered_prompt_mismatch"

# Vector used when a request is malformed rather than an attack on a named vector.
INVALID_REQUEST = "invalid_request"


class PolicyViolation(Exception):
    """A request the policy refuses. `status` is 400, or 404 for an unknown model."""

    __slots__ = ("status", "code", "param", "message", "vector")

    def __init__(
        self,
        code: str,
        message: str,
        param: str | None = None,
        vector: str = INVALID_REQUEST,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.message = message
        self.vector = vector

    def __repr__(self) -> str:
        return (
            f"PolicyViolation(status={self.status}, code={self.code!r}, param={self.param!r}, "
            f"vector={self.vector!r}, message={self.message!r})"
        )

    def as_api_error(self) -> APIError:
        """The OpenAI-shaped error; policy blocks must not be retried by clients."""
        return APIError(
            self.status,
            self.message,
            "invalid_request_error",
            self.param,
            self.code,
            {"x-should-retry": "false"},
        )
