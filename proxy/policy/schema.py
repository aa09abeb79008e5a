"""`response_format`: text and JSON mode pass; a JSON schema passes only if it shapes structure.

Guided decoding makes the model emit whatever a schema pins down, and not only through the
keywords that obviously write text (`const`, `enum`, `pattern`, `default`):
- required property *names* are written verbatim, so a property named "Sure, here is how ...
  Step 1:" forces those words as the start of the answer;
- a keyword the check does not know (`$comment`, `title`, `x-anything`) can hold a sub-schema,
  and `$ref` can point into it, so a denylist over the keys it walks lets `pattern` back in;
- the grammar backend honours keywords a denylist has never heard of.

So the check is an allowlist: only the keywords below, property names that are short plain
identifiers, `$ref` only into this schema's own `$defs`, bounded depth and size. The schema sent
upstream is rebuilt from what was checked, so nothing unchecked can ride along.
"""

from __future__ import annotations

import re

from proxy.policy.context import PolicyContext
from proxy.policy.validate import expect_bool, expect_dict, expect_str, missing, short_repr
from proxy.policy.violation import (
    FORBIDDEN_PARAMETER,
    FORBIDDEN_SCHEMA_KEYWORD,
    UNKNOWN_PARAMETER,
    VALUE_OUT_OF_RANGE,
    PolicyViolation,
)

MAX_SCHEMA_DEPTH = 16  # nested sub-schemas
MAX_SCHEMA_NODES = 512  # sub-schemas in one schema
MAX_PROPERTIES = 64  # properties of one object
MAX_DEFS = 64
MAX_UNION = 16  # anyOf / oneOf branches
# Property (and $defs) names: what a programmer would write, short enough that a name cannot
# carry a sentence. Spaces, punctuation and long names are how text gets forced.
PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}\Z")
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
# Formats give the grammar a shape (a date, a uuid), never words.
FORMATS = (
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "uuid",
    "uri",
    "ipv4",
    "ipv6",
    "hostname",
)
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
MAX_COUNT = 4096
# Every keyword accepted; anything else is `forbidden_schema_keyword` with its path.
ALLOWED_KEYWORDS = (
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "oneOf",
    "$defs",
    "$ref",
    "format",
    "title",
    "description",
    "enum",
    "const",
    "default",
    *_COUNTS,
    *_BOUNDS,
)
# Numbers, booleans and null pin a value, never words: accepted in `enum` / `const`.
_NON_TEXT = (int, float, bool, type(None))
_ALLOWED = frozenset(ALLOWED_KEYWORDS)
_JSON_SCHEMA_KEYS = ("name", "description", "schema", "strict")
_REF = re.compile(r"#/\$defs/([A-Za-z_][A-Za-z0-9_]{0,31})\Z")
_NUMBER = (int, float)


def check_response_format(value: object, ctx: PolicyContext) -> dict:
    fmt = expect_dict(value, "response_format")
    kind = fmt.get("type")
    if kind is None:
        raise missing("response_format.type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise PolicyViolation(
            FORBIDDEN_PARAMETER,
            f"`response_format.type` {short_repr(kind)} "
            "is not accepted; use 'text', 'json_object' or 'json_schema'.",
            "response_format.type",
            "structured_output",
        )
    if not ctx.settings.allow_json_schema:
        raise PolicyViolation(
            FORBIDDEN_PARAMETER,
            "`response_format` json_schema is turned off on this server; use 'json_object'.",
            "response_format.type",
            "response_format_schema",
        )
    spec = expect_dict(fmt.get("json_schema"), "response_format.json_schema")
    out = {}
    for key, item in spec.items():
        param = f"response_format.json_schema.{key}"
        if key not in _JSON_SCHEMA_KEYS:
            raise PolicyViolation(
                UNKNOWN_PARAMETER,
                f"`{param}` is not an accepted field (accepted: {', '.join(_JSON_SCHEMA_KEYS)}).",
                param,
                "unknown_parameter",
            )
        if item is None:
            continue
        if key == "strict":
            out[key] = expect_bool(item, param)
        elif key == "schema":
            out[key] = check_schema(item, param)
        elif key == "name":
            out[key] = _name(expect_str(item, param), param)
        else:
            # The description is rendered nowhere by vLLM; it is bounded all the same.
            out[key] = _bounded_text(expect_str(item, param), param)
    if "name" not in out:
        raise missing("response_format.json_schema.name")
    return {"type": "json_schema", "json_schema": out}


def check_schema(schema: object, param: str) -> dict:
    """Check a JSON schema against the allowlist; return the rebuilt schema."""
    walk = _SchemaWalk(schema, param)
    return walk.rebuilt


class _SchemaWalk:
    def __init__(self, schema: object, param: str) -> None:
        self.nodes = 0
        root = expect_dict(schema, param)
        defs = root.get("$defs")
        self.def_names = set(defs) if type(defs) is dict else set()
        self.rebuilt = self.node(root, param, 0, is_root=True)

    def node(self, schema: object, at: str, depth: int, is_root: bool = False) -> dict:
        if type(schema) is not dict:
            raise _forbidden(at, "a sub-schema must be an object")
        self.nodes += 1
        if depth > MAX_SCHEMA_DEPTH:
            raise PolicyViolation(
                VALUE_OUT_OF_RANGE,
                f"`{at}` is nested deeper than {MAX_SCHEMA_DEPTH} levels.",
                at,
                "response_format_schema",
            )
        if self.nodes > MAX_SCHEMA_NODES:
            raise PolicyViolation(
                VALUE_OUT_OF_RANGE,
                f"the response schema holds more than {MAX_SCHEMA_NODES} sub-schemas (at `{at}`).",
                at,
                "response_format_schema",
            )
        out: dict = {}
        for key, item in schema.items():
            if key not in _ALLOWED:
                raise _forbidden(
                    f"{at}.{key}",
                    "only structural keywords are accepted ("
                    + ", ".join(ALLOWED_KEYWORDS)
                    + "); keywords that hold text, "
                    "patterns or unknown extensions can force the words of the answer",
                )
            # The commonest values are checked inline; the rest in `keyword` (paths are built
            # only where a sub-schema or an error needs one).
            if key == "type" and type(item) is str and item in TYPES:
                out[key] = item
            elif key in _COUNTS and type(item) is int and 0 <= item <= MAX_COUNT:
                out[key] = item
            else:
                if key == "$defs" and not is_root:
                    raise _forbidden(
                        f"{at}.{key}", "`$defs` is accepted at the top of the schema only"
                    )
                out[key] = self.keyword(key, item, f"{at}.{key}", depth)
        return out

    def keyword(self, key: str, item: object, at: str, depth: int) -> object:
        if key == "type":
            kinds = item if type(item) is list else [item]
            if (
                not kinds
                or len(kinds) > len(TYPES)
                or any(k not in TYPES or type(k) is not str for k in kinds)
            ):
                raise _forbidden(
                    at, f"`type` must be one of {', '.join(TYPES)} (or a list of them)"
                )
            return item
        if key == "properties":
            return self.named(item, at, depth, MAX_PROPERTIES)
        if key == "$defs":
            return self.named(item, at, depth, MAX_DEFS)
        if key == "required":
            if type(item) is not list or len(item) > MAX_PROPERTIES:
                raise _forbidden(at, f"`required` must be a list of at most {MAX_PROPERTIES} names")
            for index, name in enumerate(item):
                if type(name) is not str or PROPERTY_NAME.match(name) is None:
                    _property_name(name, f"{at}[{index}]")
            return list(item)
        if key == "additionalProperties":
            # `true` lets the model choose its own keys (its words, as in json_object mode); a
            # sub-schema here would be a second, unnamed way in, so only booleans pass.
            if type(item) is not bool:
                raise _forbidden(at, "`additionalProperties` must be true or false")
            return item
        if key in ("const", "default"):
            if type(item) not in _NON_TEXT:
                raise _forbidden(
                    at, "a text (or object/array) constant forces the exact words of the answer"
                )
            return item
        if key == "enum":
            if (
                type(item) is not list
                or not item
                or len(item) > MAX_PROPERTIES
                or any(type(v) not in _NON_TEXT for v in item)
            ):
                raise _forbidden(
                    at,
                    "a list of texts forces the exact words of the answer; "
                    "`enum` may hold numbers, booleans and null only",
                )
            return list(item)
        if key == "items":
            return self.node(item, at, depth + 1)
        if key in ("anyOf", "oneOf"):
            if type(item) is not list or not item or len(item) > MAX_UNION:
                raise _forbidden(at, f"`{key}` must be a list of 1 to {MAX_UNION} sub-schemas")
            return [self.node(sub, f"{at}[{i}]", depth + 1) for i, sub in enumerate(item)]
        if key == "$ref":
            match = _REF.match(item) if type(item) is str else None
            if match is None or match.group(1) not in self.def_names:
                raise _forbidden(
                    at,
                    "`$ref` may only point to an entry of this schema's `$defs` ('#/$defs/<name>')",
                )
            return item
        if key == "format":
            if item not in FORMATS or type(item) is not str:
                raise _forbidden(at, f"`format` must be one of {', '.join(FORMATS)}")
            return item
        if key in ("title", "description"):
            # Guided decoding ignores descriptions; vLLM renders nothing of response_format into
            # the prompt. Bounded so it cannot be a vehicle for size; a schema held here could
            # be a `$ref` target in a lax backend, so only a string passes.
            if type(item) is not str:
                raise _forbidden(at, f"`{key}` must be a string")
            return _bounded_text(item, at)
        if key in _COUNTS:
            if type(item) is not int or not 0 <= item <= MAX_COUNT:
                raise _forbidden(at, f"`{key}` must be an integer between 0 and {MAX_COUNT}")
            return item
        # _BOUNDS: plain numbers
        if type(item) not in _NUMBER or item != item or item in (float("inf"), float("-inf")):
            raise _forbidden(at, f"`{key}` must be a finite number")
        return item

    def named(self, item: object, at: str, depth: int, limit: int) -> dict:
        if type(item) is not dict or len(item) > limit:
            raise _forbidden(at, f"must be an object of at most {limit} named sub-schemas")
        out = {}
        for name, sub in item.items():
            if type(name) is not str or PROPERTY_NAME.match(name) is None:
                _property_name(name, f"{at}.{short_repr(name, 40)}")
            out[name] = self.node(sub, f"{at}.{name}", depth + 1)
        return out


def _property_name(name: object, at: str) -> str:
    if type(name) is not str or PROPERTY_NAME.match(name) is None:
        raise _forbidden(
            at,
            "property names must be plain identifiers (a letter or _, then "
            "letters, digits or _; at most 32 characters): guided decoding writes "
            f"them verbatim, so a name like {short_repr(name, 30)} would be words "
            "forced into the answer",
        )
    return name


def _name(value: str, param: str) -> str:
    if PROPERTY_NAME.match(value) is None and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value) is None:
        raise PolicyViolation(
            FORBIDDEN_SCHEMA_KEYWORD,
            f"`{param}` must be 1 to 64 letters, digits, '_' or '-'.",
            param,
            "response_format_schema",
        )
    return value


MAX_DESCRIPTION_CHARS = 2000


def _bounded_text(value: str, param: str) -> str:
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise PolicyViolation(
            VALUE_OUT_OF_RANGE,
            f"`{param}` is longer than {MAX_DESCRIPTION_CHARS} characters.",
            param,
            "response_format_schema",
        )
    return value


def _forbidden(param: str, why: str) -> PolicyViolation:
    return PolicyViolation(
        FORBIDDEN_SCHEMA_KEYWORD,
        f"`{param}` is not accepted in a response schema: {why}.",
        param,
        "response_format_schema",
    )
