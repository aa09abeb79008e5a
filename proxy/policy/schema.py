"""`response_format`: text and JSON mode pass, schemas that force exact text do not.

Guided decoding makes the model emit whatever a schema pins down. A string `const`, a string
`enum`, a `pattern` (also on property names via `patternProperties`) or a string `default`
writes text for the model: `{"const": "Sure, here is how"}` is a prefill. Numbers, booleans and
free strings leave the words to the model and pass. vLLM's `structural_tag` and any other
format type are rejected (they are structured-output grammars).

Known residual: required property *names* are also emitted verbatim; keep names short in your
schemas, or turn json_schema off (`allow_json_schema: false`).
"""

from __future__ import annotations

from proxy.policy.context import PolicyContext
from proxy.policy.validate import expect_bool, expect_dict, expect_str, missing, short_repr
from proxy.policy.violation import (FORBIDDEN_PARAMETER, FORBIDDEN_SCHEMA_KEYWORD,
                                    UNKNOWN_PARAMETER, VALUE_OUT_OF_RANGE, PolicyViolation)

MAX_SCHEMA_DEPTH = 32
# Keywords whose value maps names to sub-schemas.
_NAMED_SCHEMAS = ("properties", "$defs", "definitions", "dependentSchemas")
# Keywords whose value is data, not a schema: never descended into.
_DATA_KEYWORDS = ("required", "examples", "description", "title", "type", "format", "$ref",
                  "$schema", "$id", "$comment")
_JSON_SCHEMA_KEYS = ("name", "description", "schema", "strict")
_SCALAR = (int, float, bool, type(None))


def check_response_format(value: object, ctx: PolicyContext) -> dict:
    fmt = expect_dict(value, "response_format")
    kind = fmt.get("type")
    if kind is None:
        raise missing("response_format.type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise PolicyViolation(FORBIDDEN_PARAMETER, f"`response_format.type` {short_repr(kind)} "
                              "is not accepted; use 'text', 'json_object' or 'json_schema'.",
                              "response_format.type", "structured_output")
    if not ctx.settings.allow_json_schema:
        raise PolicyViolation(FORBIDDEN_PARAMETER, "`response_format` json_schema is turned off on "
                              "this server; use 'json_object'.", "response_format.type",
                              "response_format_schema")
    spec = expect_dict(fmt.get("json_schema"), "response_format.json_schema")
    out = {}
    for key, item in spec.items():
        param = f"response_format.json_schema.{key}"
        if key not in _JSON_SCHEMA_KEYS:
            raise PolicyViolation(UNKNOWN_PARAMETER, f"`{param}` is not an accepted field (accepted: "
                                  f"{', '.join(_JSON_SCHEMA_KEYS)}).", param, "unknown_parameter")
        if item is None:
            continue
        if key == "strict":
            expect_bool(item, param)
        elif key == "schema":
            check_schema(expect_dict(item, param), param)
        else:
            expect_str(item, param)
        out[key] = item
    if "name" not in out:
        raise missing("response_format.json_schema.name")
    return {"type": "json_schema", "json_schema": out}


def check_schema(schema: dict, param: str, depth: int = 0) -> None:
    """Walk a JSON schema and reject the keywords that pin down text."""
    if depth > MAX_SCHEMA_DEPTH:
        raise PolicyViolation(VALUE_OUT_OF_RANGE, f"`{param}` is nested deeper than "
                              f"{MAX_SCHEMA_DEPTH} levels.", param, "response_format_schema")
    for key, item in schema.items():
        at = f"{param}.{key}"
        if key == "pattern" or key == "patternProperties":
            _forbid(at, "a regular expression forces the exact characters of the answer")
        elif key == "const" and type(item) not in _SCALAR:
            _forbid(at, "a text constant forces the exact words of the answer")
        elif key == "enum" and (type(item) is not list or any(type(v) not in _SCALAR for v in item)):
            _forbid(at, "a list of texts forces the exact words of the answer")
        elif key == "default" and type(item) not in _SCALAR:
            _forbid(at, "a text default can force the exact words of the answer")
        elif key in _DATA_KEYWORDS or key in ("const", "enum", "default"):
            continue
        elif key in _NAMED_SCHEMAS and type(item) is dict:
            for name, sub in item.items():
                if type(sub) is dict:
                    check_schema(sub, f"{at}.{name}", depth + 1)
        elif type(item) is dict:    # items, not, if/then/else, additionalProperties, unknown ones
            check_schema(item, at, depth + 1)
        elif type(item) is list:    # anyOf, oneOf, allOf, prefixItems, items as a list
            for index, sub in enumerate(item):
                if type(sub) is dict:
                    check_schema(sub, f"{at}[{index}]", depth + 1)


def _forbid(param: str, why: str) -> None:
    raise PolicyViolation(FORBIDDEN_SCHEMA_KEYWORD, f"`{param}` is not accepted in a response "
                          f"schema: {why}. Use a plain typed field instead.", param,
                          "response_format_schema")
