"""The OpenAPI 3.1 description of every route, exact enough for a schema-driven fuzzer (Schemathesis):
request bodies and parameters as the server validates them, every status a route can answer with,
and the shape of every answer. A test checks that no route is missing.

Per-item problems in /v1/classify (a text that is empty, too long or not a string) are not request
errors: the request succeeds and that item carries an `error`, so `texts` items may be any JSON value.
"""

from __future__ import annotations

from .. import __version__
from ..engine.labels import SCHEMES
from ..limits import Limits
from .responses_api import LOGPROBS_INCLUDE, ROLES, TEXT_PARTS
from .structured_output import FORMAT_TYPES

_REF = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
_JSON = lambda name: {"content": {"application/json": {"schema": _REF(name)}}}  # noqa: E731

_ERROR_TEXT = {
    400: "Bad request (invalid JSON, parameter or value)",
    401: "Missing or wrong API key",
    403: "Host not allowed (a keyless server answers only to loopback names)",
    404: "Unknown model",
    405: "Method not allowed",
    413: "Request too large",
    503: "Loading, overloaded, timed out or shutting down (with Retry-After)",
}
# Every route may answer these: the host check and the key check run before any route.
_ALWAYS = (401, 403)


def _errors(*codes: int) -> dict:
    out = {}
    for code in sorted({*codes, *_ALWAYS}):
        response = {"description": _ERROR_TEXT[code], **_JSON("Error")}
        if code == 503:
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "required": True}}
        out[str(code)] = response
    return out


def _number(low, high, kind="number") -> dict:
    return {"type": [kind, "null"], "minimum": low, "maximum": high}


def _schemas(model_id: str, limits: Limits) -> dict:
    scheme = {"enum": [*SCHEMES, *(int(s) for s in SCHEMES), None], "default": SCHEMES[0],
              "description": "7 fine-grained labels or 3 coarse ones"}
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    item_error = {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
    classification = {
        "label": {"type": "string"},
        "score": {"type": "number", "minimum": -1, "maximum": 1},
        "probs": {"type": "object", "additionalProperties": probability},
        "cached": {"type": "boolean"},
        "truncated": {"type": "boolean"},
        "error": item_error,
    }
    role = {"enum": ["system", "developer", "user", "assistant", "tool"]}
    text_part = {"type": "object", "required": ["type", "text"],
                 "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}
    other_part = {"type": "object", "properties": {"type": {"not": {"const": "text"}}}}
    message = {"type": "object", "properties": {
        "role": role,
        "content": {"anyOf": [{"type": "string"}, {"type": "null"},
                              {"type": "array", "items": {"anyOf": [text_part, other_part]}}]}}}
    stop = {"anyOf": [{"type": "null"}, {"type": "string"},
                      {"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1}}]}
    generation = {
        "max_tokens": _number(1, limits.max_generation_tokens, "integer"),
        "max_completion_tokens": _number(1, limits.max_generation_tokens, "integer"),
        "temperature": _number(0, 2),
        "top_p": _number(0, 1),
        "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 1},
        "stop": stop,
        "seed": {"type": ["integer", "null"]},
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {"type": ["object", "null"], "description": "read with stream: true",
                           "properties": {"include_usage": {"type": ["boolean", "null"]}}},
    }
    model = {"enum": [*(f"finsent-{s}" for s in SCHEMES), model_id],
             "description": f"finsent-7, finsent-3 (classify) or {model_id} (generate); others: 404"}
    label_schema = ("a JSON schema with one string property whose enum is the model's labels: the answer is "
                    '{"<property>": "<label>"}; any other schema is a 400')
    response_format = {"type": ["object", "null"], "required": ["type"],
                       "properties": {"type": {"enum": list(FORMAT_TYPES)}},
                       "description": f'"text" (the label), or "json_schema" with {label_schema}; "json_object" '
                                      "(JSON without a schema): 400"}
    no_tools = {"type": ["array", "null"], "maxItems": 0,
                "description": "function calling is not supported: a tool is a 400 unsupported_parameter"}
    no_tool_choice = {"enum": ["none", "auto", None], "description": "anything that requires a tool: 400"}
    usage = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
             "properties": {k: {"type": "integer", "minimum": 0}
                            for k in ("prompt_tokens", "completion_tokens", "total_tokens")}}
    finish = {"enum": ["stop", "length", None]}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["message", "type", "code"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                           "code": {"type": "string"}, "param": {"type": ["string", "null"]}}}}},
        "ClassifyRequest": {
            "type": "object",
            "description": 'Either "text" (one value) or "texts" (a list), not both.',
            "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],  # one of them: both match both
            "properties": {
                "text": {"description": "One text (a non-string is an item error, not a request error)"},
                "texts": {"type": "array", "minItems": 1, "maxItems": limits.max_texts_per_request,
                          "description": f"Texts of at most {limits.max_text_chars} characters each; "
                                         "a bad item gets an error of its own"},
                "scheme": scheme,
            },
        },
        "Classification": {"type": "object", "properties": classification},
        "ExplainRequest": {
            "type": "object",
            "description": 'Either "text" (one value) or "texts" (a list), not both.',
            "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
            "properties": {
                "text": {"description": "One text (a non-string is an item error, not a request error)"},
                "texts": {"type": "array", "minItems": 1, "maxItems": limits.max_texts_per_request,
                          "description": f"Texts of at most {limits.max_text_chars} characters each, and at most "
                                         f"{limits.max_explain_words} words in all (413 too_many_words beyond)"},
                "scheme": scheme,
                "unit": {"enum": ["word", "phrase", None], "default": "word",
                         "description": "word: each word alone; phrase: each pair of adjacent words"},
            },
        },
        "Attribution": {"type": "object", "required": ["start", "end", "text", "weight", "label_weight", "label_without"],
                        "properties": {
            "start": {"type": "integer", "minimum": 0,
                      "description": "offset of the word in the text, in Unicode code points"},
            "end": {"type": "integer", "minimum": 0}, "text": {"type": "string"},
            "weight": {"type": "number", "minimum": -2, "maximum": 2,
                       "description": "score with the word minus score without it (> 0: it pushed towards positive)"},
            "label_weight": {"type": "number", "minimum": -1, "maximum": 1,
                             "description": "probability of the label with the word minus without it (> 0: it "
                                            "supported the label)"},
            "label_without": {"type": "string", "description": "the label the text gets without the word"}}},
        "Explanation": {"type": "object", "properties": {
            **classification, "unit": {"enum": ["word", "phrase"]},
            "words": {"type": "array", "items": _REF("Attribution")}}},
        "ExplainResponse": {"type": "object", "required": ["scheme", "labels"], "properties": {
            "scheme": {"enum": list(SCHEMES)},
            "labels": {"type": "array", "items": {"type": "string"}},
            "results": {"type": "array", "items": _REF("Explanation")},
            **classification, "unit": {"enum": ["word", "phrase"]},
            "words": {"type": "array", "items": _REF("Attribution")}}},
        "DocumentRequest": {"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string", "maxLength": limits.max_document_chars,
                     "description": f"The document: at most {limits.max_document_chars} characters and "
                                    f"{limits.max_document_sentences} sentences (413 beyond)"},
            "scheme": scheme,
            "about": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                      "description": 'Only sentences naming one of these ("Acme|Acme Corp" or a list): '
                                     "case-insensitive, whole words"},
            "explain": {"type": ["boolean", "null"], "default": False,
                        "description": "true: the most positive and the most negative sentence get `words`, each "
                                       "word's weight as /v1/explain gives it (about one classification per word "
                                       "of those two sentences; not the other sentences)"}}},
        "DocumentExtreme": {"type": ["object", "null"], "required": ["index", "text", "label", "score"],
                            "properties": {
            "index": {"type": "integer", "minimum": 0}, "text": {"type": "string"}, "label": {"type": "string"},
            "score": {"type": "number", "minimum": -1, "maximum": 1},
            "words": {"type": "array", "items": _REF("Attribution"), "description": 'with "explain": true'},
            "words_error": {**item_error, "description": 'with "explain": true, when this sentence could not be '
                                                          "explained (too_many_words: over the explain word limit)"}}},
        "DocumentSentence": {"type": "object", "required": ["index", "start", "end", "text"], "properties": {
            "index": {"type": "integer", "minimum": 0}, "start": {"type": "integer", "minimum": 0},
            "end": {"type": "integer", "minimum": 0}, "text": {"type": "string"},
            "label": {"type": "string"}, "score": {"type": "number", "minimum": -1, "maximum": 1},
            "probs": {"type": "object", "additionalProperties": probability}, "error": item_error}},
        "DocumentResponse": {"type": "object", "required": ["scheme", "labels", "document", "sentences"], "properties": {
            "scheme": {"enum": list(SCHEMES)},
            "labels": {"type": "array", "items": {"type": "string"}},
            "document": {"type": "object", "required": ["label", "score", "sentences"], "properties": {
                "label": {"type": ["string", "null"],
                          "description": "the label whose scale value is nearest the mean sentence score; "
                                         '"no mention" when `about` matched no sentence; null when no sentence'},
                "score": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
                "length_weighted_score": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
                "non_neutral_share": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "label_counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "sentences": {"type": "integer"}, "scored": {"type": "integer"}, "errors": {"type": "integer"},
                "most_positive": _REF("DocumentExtreme"), "most_negative": _REF("DocumentExtreme"),
                "rule": {"type": "string"},
                "about": {"type": "object"}}},
            "sentences": {"type": "array", "items": _REF("DocumentSentence")}}},
        "ClassifyResponse": {"type": "object", "required": ["scheme", "labels"], "properties": {
            "scheme": {"enum": list(SCHEMES)},
            "labels": {"type": "array", "items": {"type": "string"}},
            "results": {"type": "array", "items": _REF("Classification")},
            **classification}},
        "ChatRequest": {"type": "object", "required": ["model", "messages"], "properties": {
            "model": model,
            "messages": {"type": "array", "minItems": 1, "items": message},
            "logprobs": {"type": ["boolean", "null"]},
            "top_logprobs": _number(0, 20, "integer"),
            "response_format": response_format,
            "tools": no_tools, "functions": no_tools, "tool_choice": no_tool_choice, "function_call": no_tool_choice,
            **generation}},
        "ResponsesRequest": _responses_request(limits, label_schema, no_tools, no_tool_choice),
        "Response": _response_object(),
        "CompletionRequest": {"type": "object", "required": ["model", "prompt"], "properties": {
            "model": model,
            "prompt": {"anyOf": [{"type": "string"},
                                 {"type": "array", "minItems": 1, "maxItems": limits.max_texts_per_request,
                                  "items": {"type": "string"}}],
                       "description": "A list of two or more prompts is one batched classification (finsent-7/"
                                      "finsent-3 only: 400 for the raw model), one choice per prompt"},
            "logprobs": _number(0, 20, "integer"),
            **generation}},
        "ChatCompletion": {"type": "object", "required": ["id", "object", "created", "model", "choices"], "properties": {
            "id": {"type": "string"}, "object": {"const": "chat.completion"}, "created": {"type": "integer"},
            "model": {"type": "string"}, "usage": usage, "finsent": _REF("Classification"),
            "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message", "finish_reason"],
                        "properties": {"index": {"type": "integer"}, "finish_reason": finish,
                                       "logprobs": {"type": ["object", "null"]},
                                       "message": {"type": "object", "required": ["role", "content"], "properties": {
                                           "role": {"const": "assistant"}, "content": {"type": "string"}}}}}}}},
        "Completion": {"type": "object", "required": ["id", "object", "created", "model", "choices"], "properties": {
            "id": {"type": "string"}, "object": {"const": "text_completion"}, "created": {"type": "integer"},
            "model": {"type": "string"}, "usage": usage, "finsent": _REF("Classification"),
            "choices": {"type": "array", "items": {"type": "object", "required": ["index", "text", "finish_reason"],
                        "properties": {"index": {"type": "integer"}, "text": {"type": "string"},
                                       "finish_reason": finish, "logprobs": {"type": ["object", "null"]}}}}}},
        "ModelList": {"type": "object", "required": ["object", "data"], "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"type": "object", "required": ["id", "object"], "properties": {
                "id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
                "owned_by": {"type": "string"}}}}}},
        "Status": {"type": "object", "required": ["status", "model", "backend", "schemes", "limits", "cache"],
                   "properties": {
            "status": {"enum": ["ok", "loading", "error"]}, "error": {"type": ["string", "null"]},
            "version": {"type": "string"}, "model": {"type": "string"}, "model_file": {"type": "string"},
            "adapter_file": {"type": ["string", "null"], "description": "the LoRA adapter applied (serve --lora)"},
            "model_bytes": {"type": ["integer", "null"]}, "backend": {"type": "string"},
            "extra_cpu_buffers": {"type": ["boolean", "null"],
                                  "description": "whether llama.cpp's extra CPU buffer types (AMX, repacked "
                                                 "weights) are in use; null while the model loads"},
            "schemes": {"type": "object", "description": "label names and their values on the -1..1 scale, by scheme",
                        "additionalProperties": {"type": "object", "properties": {
                            "labels": {"type": "array", "items": {"type": "string"}},
                            "values": {"type": "array", "items": {"type": "number"}}}}},
            "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
            "cache": {"type": "object", "properties": {
                "enabled": {"type": "boolean"}, "hits": {"type": "integer"}, "misses": {"type": "integer"},
                "hit_rate": {"type": ["number", "null"]}}},
            "texts_classified": {"type": "integer"}, "queued_texts": {"type": "integer"}}},
        "Health": {"type": "object", "required": ["status"], "properties": {
            "status": {"enum": ["ok", "loading", "error"]}, "model": {"type": "string"},
            "backend": {"type": "string"}, "error": {"type": ["string", "null"]}}},
    }


def _responses_request(limits: Limits, label_schema: str, no_tools: dict, no_tool_choice: dict) -> dict:
    """POST /v1/responses: every field the route knows (any other is a 400)."""
    part = {"type": "object", "required": ["type", "text"],
            "properties": {"type": {"enum": list(TEXT_PARTS)}, "text": {"type": "string"}}}
    item = {"type": "object", "required": ["role", "content"], "properties": {
        "type": {"const": "message"}, "role": {"enum": list(ROLES)},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": part}]}}}
    text = lambda: {"type": ["string", "null"]}  # noqa: E731
    flag = lambda: {"type": ["boolean", "null"]}  # noqa: E731
    refused = lambda: {"enum": [None, False], "description": "nothing is stored and no tools run: 400 if set"}  # noqa: E731
    return {"type": "object", "required": ["model", "input"], "additionalProperties": False, "properties": {
        "model": {"enum": [f"finsent-{s}" for s in SCHEMES],
                  "description": "finsent-7 or finsent-3 (the raw model generates through /v1/chat/completions: "
                                 "400); others: 404"},
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": item}],
                  "description": "The text, or messages: the last user message is classified"},
        "instructions": text(),
        "text": {"type": ["object", "null"], "properties": {"format": {
            "type": ["object", "null"], "required": ["type"], "properties": {"type": {"enum": list(FORMAT_TYPES)}},
            "description": f'"text" (the label), or "json_schema" (with "schema") with {label_schema}'}}},
        "include": {"type": ["array", "null"], "items": {"type": "string"},
                    "description": f'"{LOGPROBS_INCLUDE}" gives every label\'s log-probability'},
        "top_logprobs": _number(0, 20, "integer"),
        "stream": flag(), "store": flag(), "parallel_tool_calls": flag(),
        "stream_options": {"type": ["object", "null"]},
        "metadata": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
        "temperature": _number(0, 2), "top_p": _number(0, 1),
        "max_output_tokens": _number(1, limits.max_generation_tokens, "integer"),
        "truncation": {"enum": ["auto", "disabled", None]},
        "user": text(), "safety_identifier": text(), "prompt_cache_key": text(), "service_tier": text(),
        "tools": no_tools, "tool_choice": no_tool_choice,
        **{name: refused() for name in ("previous_response_id", "conversation", "background", "reasoning",
                                        "prompt", "max_tool_calls")}}}


def _response_object() -> dict:
    count = {"type": "integer", "minimum": 0}
    output_text = {"type": "object", "required": ["type", "text", "annotations"], "properties": {
        "type": {"const": "output_text"}, "text": {"type": "string"}, "annotations": {"type": "array"},
        "logprobs": {"type": "array"}}}
    message = {"type": "object", "required": ["type", "id", "status", "role", "content"], "properties": {
        "type": {"const": "message"}, "id": {"type": "string"}, "status": {"const": "completed"},
        "role": {"const": "assistant"}, "content": {"type": "array", "items": output_text}}}
    return {"type": "object", "required": ["id", "object", "created_at", "status", "model", "output", "usage"],
            "properties": {
                "id": {"type": "string"}, "object": {"const": "response"}, "created_at": {"type": "integer"},
                "status": {"const": "completed"}, "model": {"type": "string"},
                "output": {"type": "array", "items": message},
                "usage": {"type": "object", "required": ["input_tokens", "output_tokens", "total_tokens"],
                          "properties": {k: count for k in ("input_tokens", "output_tokens", "total_tokens")}},
                "finsent": _REF("Classification")}}


_SSE_EVENT = {"type": "object", "required": ["data"], "properties": {
    "data": {"type": "string", "description": "a JSON chunk (or an error object), then [DONE]"},
    "event": {"type": "string"}, "id": {"type": "string"}}}


def _completion_responses(schema: str) -> dict:
    return {"200": {"description": "The completion, or with stream=true a stream of server-sent events",
                    "content": {"application/json": {"schema": _REF(schema)},
                                "text/event-stream": {"schema": _SSE_EVENT}}},
            **_errors(400, 404, 413, 503)}


def openapi_spec(model_id: str, limits: Limits) -> dict:
    scheme_query = {"name": "scheme", "in": "query", "schema": {"enum": list(SCHEMES), "default": SCHEMES[0]}}
    plain = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "FinSent Local", "version": __version__,
                 "description": f"Financial sentiment with {model_id}: FinSent API and OpenAI-compatible API. "
                                f"Limits: {limits.max_texts_per_request} texts and {limits.max_body_bytes} bytes "
                                f"per request, {limits.max_text_chars} characters per text."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(model_id, limits),
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/classify": {"post": {
                "summary": "Classify one text or a batch", "requestBody": {"required": True, **_JSON("ClassifyRequest")},
                "responses": {"200": {"description": "Labels", **_JSON("ClassifyResponse")},
                              **_errors(400, 413, 503)}}},
            "/v1/explain": {"post": {
                "summary": "Why this label: each word's weight, by occlusion (the answer without the word)",
                "requestBody": {"required": True, **_JSON("ExplainRequest")},
                "responses": {"200": {"description": "Labels and word weights", **_JSON("ExplainResponse")},
                              **_errors(400, 413, 503)}}},
            "/v1/documents": {"post": {
                "summary": "A long text (press release, transcript, filing) as sentence labels and one document result",
                "requestBody": {"required": True, **_JSON("DocumentRequest")},
                "responses": {"200": {"description": "Sentences and the document", **_JSON("DocumentResponse")},
                              **_errors(400, 413, 503)}}},
            "/v1/label": {"get": {
                "summary": "The bare label as text/plain (for WEBSERVICE() in spreadsheets)",
                "parameters": [{"name": "text", "in": "query", "required": True, "schema": {"type": "string"}},
                               scheme_query,
                               {"name": "key", "in": "query", "schema": {"type": "string"},
                                "description": "API key, for clients that cannot send headers"}],
                "responses": {"200": {"description": "The label (blank for blank text)", "content": plain},
                              "400": {"description": "#FINSENT! message", "content": plain},
                              **{k: v for k, v in _errors(503).items() if k != "400"}}}},
            "/v1/models": {"get": {"summary": "OpenAI: list models",
                                   "responses": {"200": {"description": "Models", **_JSON("ModelList")},
                                                 **_errors(503)}}},
            "/v1/chat/completions": {"post": {
                "summary": "OpenAI: chat completions (finsent-7/finsent-3 classify the last user message)",
                "requestBody": {"required": True, **_JSON("ChatRequest")},
                "responses": _completion_responses("ChatCompletion")}},
            "/v1/responses": {"post": {
                "summary": "OpenAI: Responses API (finsent-7/finsent-3 classify the last user message; "
                           "stream=true sends response.* events)",
                "requestBody": {"required": True, **_JSON("ResponsesRequest")},
                "responses": _completion_responses("Response")}},
            "/v1/completions": {"post": {
                "summary": "OpenAI: completions (finsent-7/finsent-3 classify the prompt)",
                "requestBody": {"required": True, **_JSON("CompletionRequest")},
                "responses": _completion_responses("Completion")}},
            "/health": {"get": {"summary": "Ready when the model is loaded", "security": [],
                                "responses": {"200": {"description": "Ready", **_JSON("Health")},
                                              "403": {"description": _ERROR_TEXT[403], **_JSON("Error")},
                                              "503": {"description": "Loading or failed", **_JSON("Health")}}}},
            "/v1/status": {"get": {"summary": "Model file, backend, label sets, limits and cache use (for the web page)",
                                   "responses": {"200": {"description": "Status", **_JSON("Status")}, **_errors()}}},
            "/": {"get": {"summary": "The web page (HTML; no key needed, the page asks for it)", "security": [],
                          "responses": {"200": {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}},
                                        "403": {"description": _ERROR_TEXT[403], **_JSON("Error")}}}},
            "/ui/{name}": {"get": {
                "summary": "The web page's scripts, styles and icon", "security": [],
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The file", "content": {
                                  t: {"schema": {"type": "string"}} for t in
                                  ("text/html", "text/javascript", "text/css", "image/svg+xml")}},
                              "403": {"description": _ERROR_TEXT[403], **_JSON("Error")},
                              "404": {"description": "No such file", **_JSON("Error")}}}},
            "/addin/{name}": {"get": {
                "summary": "The Office add-in's files (functions.js, functions.html, icons)", "security": [],
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The file", "content": {
                                  t: {"schema": {"type": "string"}} for t in ("text/javascript", "text/html", "image/png")}},
                              "403": {"description": _ERROR_TEXT[403], **_JSON("Error")},
                              "404": {"description": "No such file", **_JSON("Error")}}}},
            "/addin/functions.json": {"get": {
                "summary": "The add-in's custom functions metadata (from the same definitions as the xlwings functions)",
                "security": [], "responses": {"200": {"description": "Office custom functions metadata",
                                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                                              "403": {"description": _ERROR_TEXT[403], **_JSON("Error")}}}},
            "/addin/manifest.xml": {"get": {
                "summary": "The add-in's manifest for this server's HTTPS address (over plain HTTP: 307 to the "
                           "HTTPS listener, or 404 when there is none)",
                "security": [], "responses": {"200": {"description": "Add-in only manifest (XML)",
                                                      "content": {"application/xml": {"schema": {"type": "string"}}}},
                                              "307": {"description": "To the HTTPS listener"},
                                              "404": {"description": "No HTTPS listener", **_JSON("Error")},
                                              "403": {"description": _ERROR_TEXT[403], **_JSON("Error")}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "Prometheus text format", "content": plain},
                                               **_errors()}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {"schema": {"type": "object"}}}},
                                                    **_errors()}}},
        },
    }
