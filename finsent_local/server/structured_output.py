"""What a finsent model can answer besides the bare label, and what it refuses instead of ignoring.

OpenAI clients ask for JSON with a JSON schema: chat's `response_format`, the Responses API's
`text.format` (the client's `.parse()`, langchain's `with_structured_output(method="json_schema")`).
A finsent model picks one of its labels, so the one schema it can honour is an object with a single
string property whose `enum` is the model's label set (in any order); the answer is then the JSON text
`{"<property>": "<label>"}`. Any other schema, JSON mode without a schema (`json_object`) and function
calling (`tools`, `functions`, a `tool_choice` that requires a tool) are a 400 `unsupported_parameter`
naming the parameter, so a client fails at the cause rather than parsing a bare label later.
"""

from __future__ import annotations

import json

from .errors import ApiError

FORMAT_TYPES = ("text", "json_schema", "json_object")
# Keywords that describe a schema without restricting its values: harmless to accept.
_ANNOTATIONS = {"title", "description", "$comment", "examples", "default", "$schema"}


def unsupported(param: str, message: str) -> ApiError:
    return ApiError(400, "unsupported_parameter", message, param=param)


def refuse_tools(body: dict, names: tuple[str, ...], choices: tuple[str, ...] = ("tool_choice",)) -> None:
    """Function calling: absent, null or empty is fine; a tool offered (or required) is a 400."""
    for name in names:
        value = body.get(name)
        if value is not None and not isinstance(value, list):
            raise ApiError(400, "invalid_parameter", f"{name} must be a list", param=name)
        if value:
            raise unsupported(name, f"{name} (function calling) is not supported: finsent models answer with a "
                                    "label; for JSON, ask for a json_schema whose one string property's enum is "
                                    "the label set")
    for name in choices:
        if body.get(name) not in (None, "none", "auto"):
            raise unsupported(name, f'{name} may only be "none" or "auto": function calling is not supported')


def label_property(format_type, schema, labels: list[str] | None, param: str) -> str | None:
    """The property to answer {"<property>": "<label>"} in, or None for the bare label (format "text").

    `labels` is None for a model that does not classify (it answers text only)."""
    if format_type not in FORMAT_TYPES:
        raise ApiError(400, "invalid_parameter", f"{param} type must be one of {', '.join(FORMAT_TYPES)}", param=param)
    if format_type == "text":
        return None
    if labels is None:
        raise unsupported(param, f"{param} {format_type} is answered by the classifying models (finsent-7, "
                                 "finsent-3) only; this model answers text")
    wanted = ("an object with exactly one string property whose enum is the labels "
              f"({', '.join(labels)})")
    if format_type == "json_object":
        raise unsupported(param, f"{param} json_object (JSON without a schema) is not supported; use json_schema "
                                 f"with {wanted}")
    if not isinstance(schema, dict):
        raise ApiError(400, "invalid_parameter", f"{param} json_schema needs a schema: {wanted}", param=param)
    properties = schema.get("properties")
    if (schema.get("type") != "object" or not isinstance(properties, dict) or len(properties) != 1
            or set(schema) - _ANNOTATIONS - {"type", "properties", "required", "additionalProperties", "$defs"}):
        raise unsupported(param, f"{param}: only one JSON schema is supported, {wanted}")
    ((name, prop),) = properties.items()
    prop = _resolve(prop, schema.get("$defs"))
    enum = prop.get("enum") if isinstance(prop, dict) else None
    if (not isinstance(enum, list) or prop.get("type", "string") != "string"
            or set(prop) - _ANNOTATIONS - {"type", "enum"}):
        raise unsupported(param, f"{param}: the property {name!r} must be a string with an enum of the labels "
                                 f"({', '.join(labels)})")
    if len(enum) != len(labels) or set(map(str, enum)) != set(labels):
        raise unsupported(param, f"{param}: the enum of {name!r} must be this model's labels "
                                 f"({', '.join(labels)}), got {json.dumps(enum)[:200]}")
    return name


def _resolve(prop, defs):
    """A property given as {"$ref": "#/$defs/Name"} (pydantic's form for an Enum class)."""
    ref = prop.get("$ref") if isinstance(prop, dict) else None
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, dict):
        return defs.get(ref.removeprefix("#/$defs/"))
    return prop


def answer_text(label: str, prop: str | None) -> str:
    return label if prop is None else json.dumps({prop: label})
