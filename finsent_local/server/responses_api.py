"""The OpenAI Responses API, POST /v1/responses, for the classifying models finsent-7 and finsent-3.

`input` is a string or a list of messages (`role`, `content`: a string or input_text/output_text parts);
`instructions` is one more system message. The last user message is classified by the chat route's code
(openai_api.classification_reply), so limits, cache, errors and usage are the chat route's. The answer is
one output message holding one output_text: the label, or `{"<property>": "<label>"}` for a json_schema
`text.format` (structured_output.py). `stream: true` sends the Responses API's server-sent events.

Nothing is stored, so `previous_response_id`, `conversation` and `background` are refused, as are tools,
reasoning and fields this server does not know (a 400 naming the field, never silently ignored). The raw
model generates text through /v1/chat/completions only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

from flask import Blueprint, Response

from .context import service
from .errors import ApiError
from .openai_api import (CLASSIFIER_MODELS, chat_logprobs, classification_reply, message_text, model_labels,
                         requested_model, valid_unicode)
from .requests import bool_param, json_body, number_param
from .structured_output import label_property, refuse_tools, unsupported

blueprint = Blueprint("openai_responses", __name__)

ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text")
LOGPROBS_INCLUDE = "message.output_text.logprobs"
# Accepted fields beyond those read below, by JSON type (null is always fine): they change nothing here.
_TYPED = {"instructions": str, "stream": bool, "store": bool, "parallel_tool_calls": bool, "user": str,
          "safety_identifier": str, "prompt_cache_key": str, "service_tier": str, "metadata": dict,
          "stream_options": dict, "text": dict, "include": list, "tools": list}
# What needs stored state, a tool or a reasoning model: refused unless null (or false).
_STATEFUL = ("previous_response_id", "conversation", "background", "reasoning", "prompt", "max_tool_calls")
_READ = {"model", "input", "tool_choice", "truncation", "temperature", "top_p", "top_logprobs",
         "max_output_tokens"}
_TYPE_NAMES = {str: "a string", bool: "true or false", dict: "an object", list: "a list"}


def _check_fields(body: dict) -> None:
    for name, value in body.items():
        if name in _STATEFUL:
            if value is not None and value is not False:
                raise unsupported(name, f"{name} is not supported: this server stores nothing and runs no tools "
                                        "or reasoning; send the whole input each time")
        elif name in _TYPED:
            kind = _TYPED[name]
            if value is not None and not isinstance(value, kind):
                raise ApiError(400, "invalid_parameter", f"{name} must be {_TYPE_NAMES[kind]}", param=name)
        elif name not in _READ:
            raise ApiError(400, "unknown_parameter", f"unknown parameter {name[:60]!r} for /v1/responses "
                                                     "(see /openapi.json)", param=name[:60])
    if not all(isinstance(v, str) for v in (body.get("metadata") or {}).values()):
        raise ApiError(400, "invalid_parameter", "metadata values must be strings", param="metadata")
    if not all(isinstance(v, str) for v in body.get("include") or []):
        raise ApiError(400, "invalid_parameter", "include must be a list of strings", param="include")
    if body.get("truncation") not in (None, "auto", "disabled"):
        raise ApiError(400, "invalid_parameter", 'truncation must be "auto" or "disabled"', param="truncation")


def _text_format(body: dict) -> dict:
    fmt = (body.get("text") or {}).get("format")
    if fmt is None:
        return {"type": "text"}
    if not isinstance(fmt, dict):
        raise ApiError(400, "invalid_parameter", "text.format must be an object", param="text.format")
    return fmt


def _user_text(body: dict) -> str:
    """The last user message of `input`; every item is checked, as the chat route checks every message."""
    value = body.get("input")
    if isinstance(value, str):
        return valid_unicode(value, "input")
    if not isinstance(value, list) or not value:
        raise ApiError(400, "invalid_request", '"input" must be a string or a non-empty list of messages',
                       param="input")
    users = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_request", f"{param} must be a message object", param=param)
        if item.get("type", "message") != "message":
            raise unsupported(param, f"{param}: only message items (role and content) are supported, "
                                     f"not {str(item.get('type'))[:40]!r}")
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise ApiError(400, "invalid_request", f"{param}: role must be one of {', '.join(ROLES)}", param=param)
        if isinstance(content, list) and not all(isinstance(p, dict) and p.get("type") in TEXT_PARTS
                                                 for p in content):
            raise unsupported(param, f"{param}: only text content is supported ({', '.join(TEXT_PARTS)} parts)")
        text = valid_unicode(message_text(content, param, TEXT_PARTS), param)
        if role == "user":
            users.append(text)
    if not users:
        raise ApiError(400, "invalid_request", "no user message to classify", param="input")
    return users[-1]


def _output_text(text: str, logprobs: list) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _message(item_id: str, status: str, content: list) -> dict:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _usage(chat_usage: dict) -> dict:
    return {"input_tokens": chat_usage["prompt_tokens"], "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": chat_usage["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": chat_usage["total_tokens"]}


@blueprint.post("/v1/responses")
def responses():
    body = json_body()
    _check_fields(body)
    model = requested_model(body)
    if model not in CLASSIFIER_MODELS:
        raise unsupported("model", f"/v1/responses answers with the classifying models ({', '.join(CLASSIFIER_MODELS)}); "
                                   f"to generate text with {model}, use /v1/chat/completions")
    refuse_tools(body, ("tools",))
    fmt = _text_format(body)
    json_property = label_property(fmt.get("type"), fmt.get("schema"), model_labels(model), "text.format")
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1),
                            ("max_output_tokens", 1, service().limits.max_generation_tokens)):
        number_param(body, name, None, low, high, int if name == "max_output_tokens" else float)  # checked only
    top = number_param(body, "top_logprobs", None, 0, 20, int)
    stream = bool_param(body, "stream")
    want_logprobs = LOGPROBS_INCLUDE in (body.get("include") or [])
    reply = classification_reply(_user_text(body), model,
                                 lambda result: chat_logprobs(result, top)["content"] if want_logprobs else [],
                                 json_property)
    head = {"id": f"resp_{uuid.uuid4().hex}", "object": "response", "created_at": int(time.time()), "model": model,
            "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "metadata": body.get("metadata") or {},
            "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
            "reasoning": None, "store": False, "temperature": body.get("temperature"), "text": {"format": fmt},
            "tool_choice": body.get("tool_choice") or "auto", "tools": [], "top_p": body.get("top_p"),
            "truncation": body.get("truncation") or "disabled", "user": body.get("user")}
    events = _events(head, f"msg_{uuid.uuid4().hex}", reply)
    if stream:
        response = Response(_server_sent(events), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
        response.call_on_close(reply.close)
        return response
    *_, (_, completed) = events  # the same events, unsent: the last one holds the finished response
    return completed["response"]


def _events(head: dict, item_id: str, reply) -> Iterator[tuple[str, dict]]:
    """The Responses API's events for one output message, as (type, fields); the last is
    response.completed with the whole response (the answer when not streaming)."""
    in_progress = {**head, "status": "in_progress", "output": [], "usage": None}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    yield "response.created", {"response": in_progress}
    yield "response.in_progress", {"response": in_progress}
    yield "response.output_item.added", {"output_index": 0, "item": _message(item_id, "in_progress", [])}
    yield "response.content_part.added", {**where, "part": _output_text("", [])}
    text = ""
    for delta in reply.deltas:
        text += delta
        yield "response.output_text.delta", {**where, "delta": delta, "logprobs": reply.logprobs}
    yield "response.output_text.done", {**where, "text": text, "logprobs": reply.logprobs}
    part = _output_text(text, reply.logprobs)
    yield "response.content_part.done", {**where, "part": part}
    message = _message(item_id, "completed", [part])
    yield "response.output_item.done", {"output_index": 0, "item": message}
    yield "response.completed", {"response": {**head, "status": "completed", "output": [message],
                                              "usage": _usage(reply.usage()), **reply.extra}}


def _server_sent(events: Iterator[tuple[str, dict]]) -> Iterator[str]:
    for number, (kind, fields) in enumerate(events):
        yield f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': number, **fields})}\n\n"
