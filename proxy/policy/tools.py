"""`tools` and `tool_choice`.

Tool definitions are rendered into the prompt (names, descriptions and the JSON schema of the
parameters, usually with tojson), so every string in them is scanned for control tokens, and the
operator may restrict the names. A forced tool call (`tool_choice: "required"` or a named
function) is constrained decoding of client-chosen JSON: it writes the start of the answer, so
only `none` and `auto` pass by default.
"""

from __future__ import annotations

from proxy.policy.context import PolicyContext
from proxy.policy.control_tokens import reject_control_tokens, reject_control_tokens_in_json
from proxy.policy.schema import check_schema
from proxy.policy.validate import (
    expect_bool,
    expect_dict,
    expect_list,
    expect_str,
    invalid,
    missing,
    short_repr,
    wrong_type,
)
from proxy.policy.violation import (
    FORBIDDEN_PARAMETER,
    TOOL_NOT_ALLOWED,
    UNKNOWN_PARAMETER,
    VALUE_OUT_OF_RANGE,
    PolicyViolation,
)

MAX_TOOLS = 128
_FUNCTION_KEYS = ("name", "description", "parameters", "strict")


def check_tools(value: object, ctx: PolicyContext) -> list[dict]:
    tools = expect_list(value, "tools")
    if len(tools) > MAX_TOOLS:
        raise PolicyViolation(
            VALUE_OUT_OF_RANGE,
            f"`tools` holds {len(tools)} tools; at most {MAX_TOOLS} are allowed.",
            "tools",
            "tools",
        )
    allowed_names = ctx.settings.allowed_tool_names
    matcher = ctx.control_tokens
    forcing = bool({"required", "named"} & set(ctx.settings.allowed_tool_choices))
    out = []
    for index, tool in enumerate(tools):
        at = f"tools[{index}]"
        tool = expect_dict(tool, at)
        if tool.get("type") != "function":
            raise invalid(f"{at}.type", f"`{at}.type` must be 'function'.")
        if set(tool) - {"type", "function"}:
            key = sorted(set(tool) - {"type", "function"})[0]
            raise PolicyViolation(
                UNKNOWN_PARAMETER,
                f"`{at}.{key}` is not an accepted field of a tool (accepted: type, function).",
                f"{at}.{key}",
                "unknown_parameter",
            )
        function = tool.get("function")
        if function is None:
            raise missing(f"{at}.function")
        function = expect_dict(function, f"{at}.function")
        rebuilt = {}
        for key, item in function.items():
            param = f"{at}.function.{key}"
            if key not in _FUNCTION_KEYS:
                raise PolicyViolation(
                    UNKNOWN_PARAMETER,
                    f"`{param}` is not an accepted field of a "
                    f"function (accepted: {', '.join(_FUNCTION_KEYS)}).",
                    param,
                    "unknown_parameter",
                )
            if item is None:
                continue
            if key == "strict":
                expect_bool(item, param)
            elif key == "parameters":
                reject_control_tokens_in_json(expect_dict(item, param), param, matcher)
                if forcing:
                    # A forced call decodes the arguments under this schema: the same allowlist
                    # as response_format, or its property names write the answer.
                    item = check_schema(item, param)
            else:
                reject_control_tokens(expect_str(item, param), param, matcher)
            rebuilt[key] = item
        name = rebuilt.get("name")
        if name is None:
            raise missing(f"{at}.function.name")
        if allowed_names is not None and name not in allowed_names:
            raise PolicyViolation(
                TOOL_NOT_ALLOWED,
                f"The tool {short_repr(name)} is not on this server's list of approved tools.",
                f"{at}.function.name",
                "tools",
            )
        out.append({"type": "function", "function": rebuilt})
    return out


def check_tool_choice(value: object, ctx: PolicyContext) -> str | dict:
    allowed = ctx.settings.allowed_tool_choices
    if type(value) is str:
        if value not in ("none", "auto", "required"):
            raise invalid(
                "tool_choice",
                "`tool_choice` must be 'none', 'auto', 'required' or a "
                f"named function; got {short_repr(value)}.",
            )
        kind = value
    elif type(value) is dict:
        kind = "named"
    else:
        raise wrong_type("tool_choice", "a string or an object", value)
    if kind not in allowed:
        raise PolicyViolation(
            FORBIDDEN_PARAMETER,
            f"`tool_choice` {short_repr(value)} forces the model to start its answer with a tool "
            f"call chosen by the client; this server accepts only {', '.join(map(repr, allowed))}.",
            "tool_choice",
            "forced_tool_choice",
        )
    if kind == "named":
        if value.get("function") is None:
            raise missing("tool_choice.function")
        function = expect_dict(value["function"], "tool_choice.function")
        if function.get("name") is None:
            raise missing("tool_choice.function.name")
        reject_control_tokens(
            expect_str(function["name"], "tool_choice.function.name"),
            "tool_choice.function.name",
            ctx.control_tokens,
        )
        return {"type": "function", "function": {"name": function["name"]}}
    return kind
