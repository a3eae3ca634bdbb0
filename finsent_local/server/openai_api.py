"""The OpenAI API's chat completions, completions and model list (the Responses API: responses_api.py).

Models: `finsent-7` and `finsent-3` classify the last user message (chat) or the prompt (completions)
and answer with the label (or, with a JSON schema response_format, `{"<property>": "<label>"}`: see
structured_output.py); the raw model id (the GGUF file's name) generates text freely. What is not
supported (tools, other schemas) is a 400, never silently ignored.
"""

from __future__ import annotations

import codecs
import json
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import closing

from flask import Blueprint, Response

from ..engine.classifier import is_valid_unicode
from ..engine.labels import SCHEMES
from ..engine.worker import Unavailable
from .context import runtime, service
from .errors import ApiError, error_body
from .requests import bool_param, json_body, number_param
from .structured_output import answer_text, label_property, refuse_tools

blueprint = Blueprint("openai", __name__)

CLASSIFIER_MODELS = {f"finsent-{scheme}": scheme for scheme in SCHEMES}
CHAT_ROLES = {"system", "developer", "user", "assistant", "tool"}


def _models() -> list[str]:
    return [runtime().model_id, *CLASSIFIER_MODELS]


@blueprint.get("/v1/models")
def list_models():
    created = int(runtime().model_path.stat().st_mtime) if runtime().model_path.exists() else 0
    return {"object": "list",
            "data": [{"id": m, "object": "model", "created": created, "owned_by": "finsent-local"} for m in _models()]}


def requested_model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "invalid_request", '"model" is required', param="model")
    if model not in _models():
        raise ApiError(404, "model_not_found", f"the model {model!r} does not exist; available: {', '.join(_models())}",
                       param="model")
    return model


def model_labels(model: str) -> list[str] | None:
    """The labels a classifying model answers with; None for the raw model (it generates text)."""
    return list(service().schemes[CLASSIFIER_MODELS[model]].labels) if model in CLASSIFIER_MODELS else None


def message_text(content, param: str = "messages", text_types: tuple[str, ...] = ("text",)) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):  # parts: text ones are joined
        texts = [p.get("text") for p in content if p.get("type") in text_types]
        if all(isinstance(t, str) for t in texts):
            return "".join(texts)
    raise ApiError(400, "invalid_request", "message content must be a string or a list of text parts", param=param)


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "invalid_request", '"messages" must be a non-empty list of messages', param="messages")
    out = []
    for m in messages:
        role = m.get("role", "user")
        if not isinstance(role, str) or role not in CHAT_ROLES:  # roles go into the template as they are: only known ones
            raise ApiError(400, "invalid_request", f"unknown message role {str(role)[:40]!r}; use one of "
                           + ", ".join(sorted(CHAT_ROLES)), param="messages")
        out.append({"role": role, "content": valid_unicode(message_text(m.get("content") or ""), "messages")})
    return out


def _prompt(body: dict) -> str | list[str]:
    """One prompt, or several (a list of two or more strings: one choice each, as in OpenAI's API)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) > 1:
            return prompt  # each is checked as a text of its own (classification) or refused (generation)
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "invalid_request", '"prompt" must be a string or a non-empty list of strings',
                       param="prompt")
    return valid_unicode(prompt, "prompt")


def valid_unicode(text: str, param: str) -> str:
    if not is_valid_unicode(text):
        raise ApiError(400, "invalid_text", "text is not valid Unicode (it contains a lone surrogate)", param=param)
    return text


def _check_n(body: dict) -> None:
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise ApiError(400, "invalid_parameter", "only n=1 is supported", param="n")


# -- classification through the OpenAI API ------------------------------------------------------
def _classify_one(text: str, scheme: str) -> dict:
    result = service().classify([text], scheme)[0]
    if "error" in result:
        raise ApiError(400, result["error"]["code"], result["error"]["message"])
    return result


def _ranked_logprobs(result: dict) -> list[tuple[str, float]]:
    return sorted(((label, math.log(max(p, 1e-12))) for label, p in result["probs"].items()),
                  key=lambda item: -item[1])


def chat_logprobs(result: dict, top: int | None) -> dict:
    ranked = _ranked_logprobs(result)
    entry = lambda label, lp: {"token": label, "logprob": lp, "bytes": list(label.encode())}  # noqa: E731
    return {"content": [{**entry(result["label"], dict(ranked)[result["label"]]),
                         "top_logprobs": [entry(l, lp) for l, lp in ranked[: top if top is not None else len(ranked)]]}]}


def _completion_logprobs(result: dict, top: int) -> dict:
    ranked = _ranked_logprobs(result)
    return {"tokens": [result["label"]], "token_logprobs": [dict(ranked)[result["label"]]],
            "top_logprobs": [dict(ranked[: max(top, 1)])], "text_offset": [0]}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


# -- free generation ------------------------------------------------------------------------------
class _Generation:
    """Text deltas from the raw model, with stop strings applied; finish_reason once done."""

    def __init__(self, prompt_tokens: list[int], body: dict):
        limit = service().limits.max_generation_tokens
        self.max_tokens = number_param(body, "max_tokens", 16 if "prompt" in body else 256, 1, limit, int)
        if "max_completion_tokens" in body:
            self.max_tokens = number_param(body, "max_completion_tokens", 256, 1, limit, int)
        self.temperature = number_param(body, "temperature", 1.0, 0.0, 2.0)
        self.top_p = number_param(body, "top_p", 1.0, 0.0, 1.0)
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ApiError(400, "invalid_parameter", "seed must be an integer", param="seed")
        self.seed = None if seed is None else seed & (2**64 - 1)  # any integer, as OpenAI allows; numpy wants >= 0
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise ApiError(400, "invalid_parameter", "stop must be a string or up to 4 strings", param="stop")
        self.stop = stop
        self.finish_reason = "stop"
        self.completion_tokens = 0
        evaluated = service().generation_prompt(prompt_tokens, self.max_tokens)
        self.prompt_tokens = len(evaluated)  # what the model evaluates (long prompts keep their end)
        self._pieces = service().generate(evaluated, self.max_tokens, self.temperature, self.top_p, self.seed)

    def close(self) -> None:
        self._pieces.close()

    def deltas(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""  # text held back while it could be the start of a stop string
        hold = max((len(s) for s in self.stop), default=1) - 1
        try:
            for piece in self._pieces:
                self.completion_tokens += 1
                pending += decoder.decode(piece)
                cut = min((i for i in (pending.find(s) for s in self.stop) if i >= 0), default=-1)
                if cut >= 0:
                    if pending[:cut]:
                        yield pending[:cut]
                    self.finish_reason = "stop"
                    return
                if len(pending) > hold:
                    emit, pending = pending[: len(pending) - hold], pending[len(pending) - hold:]
                    yield emit
            pending += decoder.decode(b"", final=True)
            if pending:
                yield pending
            self.finish_reason = "length" if self.completion_tokens >= self.max_tokens else "stop"
        finally:
            self._pieces.close()


# -- routes ---------------------------------------------------------------------------------------
def _envelope(id_prefix: str, model: str) -> dict:
    """The fields every completion object and chunk of one response share."""
    return {"id": f"{id_prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}


def _include_usage(body: dict) -> bool:
    """OpenAI's stream_options.include_usage: a last chunk with the usage and no choices."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise ApiError(400, "invalid_parameter", "stream_options must be an object", param="stream_options")
    return bool_param(options, "include_usage") and bool_param(body, "stream")


def _sse(chunks: Iterator[dict], reply: _Reply, usage_chunk: dict | None = None) -> Response:
    """Server-sent events. With `usage_chunk` (the fields of the route's chunks), every chunk carries
    "usage": null and a last one, with no choices, the usage (as OpenAI streams it)."""
    def stream():
        try:
            for chunk in chunks:
                if usage_chunk is not None:
                    chunk = {**chunk, "usage": None}
                yield f"data: {json.dumps(chunk)}\n\n"
            if usage_chunk is not None:
                yield f"data: {json.dumps({**usage_chunk, 'choices': [], 'usage': reply.usage()})}\n\n"
        except Unavailable as e:  # the status line is sent already: report the error in the stream
            yield f"data: {json.dumps(error_body(503, e.code, str(e)))}\n\n"
        yield "data: [DONE]\n\n"

    response = Response(stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
    response.call_on_close(reply.close)  # also when the client goes away before the first token
    return response


class _Reply:
    """What a completion route answers, streamed or not: text pieces, then a finish reason and usage."""

    def __init__(self, deltas, finish_reason, usage, logprobs=None, extra=None, close=lambda: None):
        self.deltas = deltas  # an iterable of text pieces (consumed once)
        self.finish_reason = finish_reason  # callables: known only after the pieces are consumed
        self.usage = usage
        self.logprobs = logprobs
        self.extra = extra or {}
        self.close = close  # called when the response ends, read or not: stops a generation


def classification_reply(text: str, model: str, logprobs_of, json_property: str | None = None) -> _Reply:
    """finsent-7/finsent-3: the label (or {json_property: label}), at once."""
    scheme = CLASSIFIER_MODELS[model]
    result = _classify_one(text, scheme)
    prompt_tokens = service().classification_prompt_tokens(text, scheme)
    return _Reply([answer_text(result["label"], json_property)], lambda: "stop", lambda: _usage(prompt_tokens, 1),
                  logprobs_of(result), {"finsent": result})


def _response_format_property(body: dict, model: str) -> str | None:
    """Chat's response_format: {"type": "text"}, or a json_schema that structured_output accepts."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise ApiError(400, "invalid_parameter", "response_format must be an object", param="response_format")
    wrapper = fmt.get("json_schema")
    schema = wrapper.get("schema") if isinstance(wrapper, dict) else None
    return label_property(fmt.get("type"), schema, model_labels(model), "response_format")


def _generation_reply(prompt_tokens: list[int], body: dict) -> _Reply:
    """The raw model generates text."""
    generation = _Generation(prompt_tokens, body)
    return _Reply(generation.deltas(), lambda: generation.finish_reason,
                  lambda: _usage(generation.prompt_tokens, generation.completion_tokens), close=generation.close)


@blueprint.post("/v1/chat/completions")
def chat_completions():
    body = json_body()
    model = requested_model(body)
    messages = _messages(body)
    _check_n(body)
    refuse_tools(body, ("tools", "functions"), ("tool_choice", "function_call"))
    json_property = _response_format_property(body, model)
    base = _envelope("chatcmpl", model)
    top = number_param(body, "top_logprobs", None, 0, 20, int)
    want_logprobs, stream = bool_param(body, "logprobs"), bool_param(body, "stream")
    include_usage = _include_usage(body)
    if model in CLASSIFIER_MODELS:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise ApiError(400, "invalid_request", "no user message to classify", param="messages")
        reply = classification_reply(users[-1], model,
                                     lambda result: chat_logprobs(result, top) if want_logprobs else None,
                                     json_property)
    else:
        reply = _generation_reply(service().chat_tokens(messages), body)

    def chunk(delta: dict, finish_reason=None, logprobs=None) -> dict:
        return {**base, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]}

    if stream:
        def chunks():
            yield chunk({"role": "assistant", "content": ""})
            for delta in reply.deltas:
                yield chunk({"content": delta}, logprobs=reply.logprobs)
            yield chunk({}, reply.finish_reason())
        return _sse(chunks(), reply, {**base, "object": "chat.completion.chunk"} if include_usage else None)
    with closing(reply):
        content = "".join(reply.deltas)
    return {**base, "object": "chat.completion", "choices": [{
        "index": 0, "message": {"role": "assistant", "content": content}, "logprobs": reply.logprobs,
        "finish_reason": reply.finish_reason()}], "usage": reply.usage(), **reply.extra}


@blueprint.post("/v1/completions")
def completions():
    body = json_body()
    model = requested_model(body)
    prompt = _prompt(body)
    _check_n(body)
    base = _envelope("cmpl", model)
    top = number_param(body, "logprobs", None, 0, 20, int)
    stream = bool_param(body, "stream")
    usage_chunk = {**base, "object": "text_completion"} if _include_usage(body) else None
    if isinstance(prompt, list):
        return _batch_completion(prompt, model, base, top, stream, usage_chunk)
    if model in CLASSIFIER_MODELS:
        reply = classification_reply(prompt, model,
                                     lambda result: _completion_logprobs(result, top) if top is not None else None)
    else:
        reply = _generation_reply(service().prompt_tokens(prompt), body)

    def choice(text: str, finish_reason) -> dict:
        return {"index": 0, "text": text, "logprobs": reply.logprobs if text else None, "finish_reason": finish_reason}

    if stream:
        def chunks():
            for delta in reply.deltas:
                yield {**base, "object": "text_completion", "choices": [choice(delta, None)]}
            yield {**base, "object": "text_completion", "choices": [choice("", reply.finish_reason())]}
        return _sse(chunks(), reply, usage_chunk)
    with closing(reply):
        text = "".join(reply.deltas)
    return {**base, "object": "text_completion", "choices": [choice(text, reply.finish_reason())],
            "usage": reply.usage(), **reply.extra}


def _batch_completion(prompts: list[str], model: str, base: dict, top: int | None, stream: bool,
                      usage_chunk: dict | None = None):
    """Several prompts for finsent-7/finsent-3: one batched classification (the limits of /v1/classify),
    one choice per prompt, `index` its position. A prompt that cannot be classified fails the request
    with its index (per-item errors: /v1/classify)."""
    if model not in CLASSIFIER_MODELS:
        raise ApiError(400, "invalid_request", "a list of prompts is classified with finsent-7 or finsent-3; "
                       "to generate text, send one prompt per request", param="prompt")
    svc = service()
    if len(prompts) > svc.limits.max_texts_per_request:
        raise ApiError(413, "too_many_texts", f"at most {svc.limits.max_texts_per_request} prompts per request "
                       f"(got {len(prompts)})", param="prompt")
    scheme = CLASSIFIER_MODELS[model]
    results = svc.classify(prompts, scheme)
    for i, result in enumerate(results):
        if "error" in result:
            raise ApiError(400, result["error"]["code"], f"prompt {i}: {result['error']['message']}",
                           param=f"prompt[{i}]")
    logprobs = [_completion_logprobs(r, top) if top is not None else None for r in results]
    prompt_tokens = sum(svc.classification_prompt_tokens(p, scheme) for p in prompts)
    usage = _usage(prompt_tokens, len(prompts))

    def choice(i: int, text: str, finish_reason) -> dict:
        return {"index": i, "text": text, "logprobs": logprobs[i] if text else None, "finish_reason": finish_reason}

    if stream:
        def chunks():
            for i, result in enumerate(results):
                yield {**base, "object": "text_completion", "choices": [choice(i, result["label"], None)]}
            for i in range(len(results)):
                yield {**base, "object": "text_completion", "choices": [choice(i, "", "stop")]}
        return _sse(chunks(), _Reply([], lambda: "stop", lambda: usage), usage_chunk)
    return {**base, "object": "text_completion",
            "choices": [choice(i, r["label"], "stop") for i, r in enumerate(results)], "usage": usage}
