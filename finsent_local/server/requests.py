"""Reading request bodies and parameters, with one clear error per problem."""

from __future__ import annotations

from flask import request

from .errors import ApiError


def json_body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "invalid_json", "the request body must be a JSON object (Content-Type: application/json)")
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    return data


def scheme_param(value, schemes) -> str:
    scheme = str(value if value is not None else "7").strip()
    if scheme not in schemes:
        raise ApiError(400, "invalid_scheme", f'scheme must be "3" or "7" (got {value!r})', param="scheme")
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
