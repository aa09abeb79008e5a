"""Type and range checks that raise `PolicyViolation` with the JSON path, never TypeError.

JSON booleans are Python bools, and bool is a subclass of int: every integer check excludes them.
"""

from __future__ import annotations

import math

from proxy.policy.violation import (
    INVALID_TYPE,
    INVALID_VALUE,
    MISSING_PARAMETER,
    VALUE_OUT_OF_RANGE,
    PolicyViolation,
)

_JSON_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def wrong_type(param: str, expected: str, value: object) -> PolicyViolation:
    return PolicyViolation(
        INVALID_TYPE, f"`{param}` must be {expected}, not {json_type(value)}.", param
    )


def missing(param: str) -> PolicyViolation:
    return PolicyViolation(MISSING_PARAMETER, f"`{param}` is required.", param)


def invalid(param: str, message: str) -> PolicyViolation:
    return PolicyViolation(INVALID_VALUE, message, param)


def expect_bool(value: object, param: str) -> bool:
    if type(value) is not bool:
        raise wrong_type(param, "a boolean", value)
    return value


def expect_str(value: object, param: str) -> str:
    if type(value) is not str:
        raise wrong_type(param, "a string", value)
    return value


def expect_dict(value: object, param: str) -> dict:
    if type(value) is not dict:
        raise wrong_type(param, "an object", value)
    return value


def expect_list(value: object, param: str) -> list:
    if type(value) is not list:
        raise wrong_type(param, "an array", value)
    return value


def expect_int(
    value: object,
    param: str,
    low: int | None = None,
    high: int | None = None,
    vector: str = "invalid_request",
) -> int:
    if type(value) is not int:
        raise wrong_type(param, "an integer", value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (
            f"between {low} and {high}"
            if high is not None and low is not None
            else f"at least {low}"
            if low is not None
            else f"at most {high}"
        )
        raise PolicyViolation(
            VALUE_OUT_OF_RANGE, f"`{param}` must be {bounds}; got {value}.", param, vector
        )
    return value


def expect_number(
    value: object, param: str, low: float, high: float, low_open: bool = False
) -> float:
    if type(value) not in (int, float):
        raise wrong_type(param, "a number", value)
    if math.isnan(value) or value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise PolicyViolation(
            VALUE_OUT_OF_RANGE, f"`{param}` must be in {bracket}{low}, {high}]; got {value}.", param
        )
    return value


def short_repr(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"
