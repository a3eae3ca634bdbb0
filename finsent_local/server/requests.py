"""Reading request bodies and parameters, with one clear error per problem."""

from __future__ import annotations

import math

from flask import request

from ..engine.labels import SCHEMES
from .errors import ApiError


def json_body() -> dict:
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the request body is nested too deeply") from None
    if data is None:
        raise ApiError(400, "invalid_json", "the request body must be a JSON object (Content-Type: application/json)")
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    if not _all_finite(data):
        raise ApiError(400, "invalid_number", "numbers must be finite (no NaN, Infinity or overflowing values like 1e999)")
    return data


def _all_finite(data) -> bool:
    stack = [data]
    while stack:  # iterative: a deeply nested body must not exhaust the Python stack
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def bool_param(body: dict, name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_parameter", f"{name} must be true or false", param=name)
    return value


def scheme_param(value, schemes) -> str:
    """A scheme name ("7", "3"; a JSON number 7 or 3 is accepted too); the first scheme when absent."""
    if value is None:
        return SCHEMES[0]
    scheme = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if scheme not in schemes:
        choices = " or ".join(f'"{name}"' for name in sorted(schemes))
        raise ApiError(400, "invalid_scheme", f"scheme must be {choices} (got {str(value)[:40]!r})", param="scheme")
    return scheme


def number_param(body: dict, name: str, default, low, high, kind=float):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, "invalid_parameter", f"{name} must be a number", param=name)
    if kind is int and value != int(value):
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer", param=name)
    if not low <= value <= high:
        raise ApiError(400, "invalid_parameter", f"{name} must be between {low} and {high}", param=name)
    return kind(value)
