"""The OpenAPI 3.1 description of every route (a test checks that none is missing)."""

from __future__ import annotations

from .. import __version__

_ERROR = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JSON = lambda ref: {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}  # noqa: E731


def _errors(*codes: int) -> dict:
    return {str(c): _ERROR for c in codes}


def openapi_spec(model_id: str) -> dict:
    scheme_param = {"name": "scheme", "in": "query", "schema": {"type": "string", "enum": ["7", "3"], "default": "7"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "FinSent Local", "version": __version__,
                 "description": f"Financial sentiment with {model_id}: FinSent API and OpenAI-compatible API."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["message", "type", "code"],
                    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                                   "code": {"type": "string"}, "param": {"type": ["string", "null"]}}}}},
                "ClassifyRequest": {"type": "object", "properties": {
                    "text": {"type": "string"},
                    "texts": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 256},
                    "scheme": {"type": "string", "enum": ["7", "3"], "default": "7"}}},
                "Classification": {"type": "object", "properties": {
                    "label": {"type": "string"}, "score": {"type": "number", "minimum": -1, "maximum": 1},
                    "probs": {"type": "object", "additionalProperties": {"type": "number"}},
                    "cached": {"type": "boolean"}, "truncated": {"type": "boolean"},
                    "error": {"type": "object", "properties": {"code": {"type": "string"},
                                                               "message": {"type": "string"}}}}},
                "ClassifyResponse": {"type": "object", "properties": {
                    "scheme": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/Classification"}}}},
                "OpenAIRequest": {"type": "object", "required": ["model"], "properties": {
                    "model": {"type": "string", "description": f"finsent-7, finsent-3 or {model_id}"},
                    "messages": {"type": "array"}, "prompt": {"type": "string"}, "stream": {"type": "boolean"},
                    "max_tokens": {"type": "integer"}, "temperature": {"type": "number"},
                    "top_p": {"type": "number"}, "stop": {}, "seed": {"type": "integer"}, "logprobs": {}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/classify": {"post": {
                "summary": "Classify one text or a batch", "requestBody": {"required": True, **_JSON("ClassifyRequest")},
                "responses": {"200": {"description": "Labels", **_JSON("ClassifyResponse")},
                              **_errors(400, 401, 413, 503)}}},
            "/v1/label": {"get": {
                "summary": "The bare label as text/plain (for WEBSERVICE() in spreadsheets)",
                "parameters": [{"name": "text", "in": "query", "required": True, "schema": {"type": "string"}},
                               scheme_param,
                               {"name": "key", "in": "query", "schema": {"type": "string"},
                                "description": "API key, for clients that cannot send headers"}],
                "responses": {"200": {"description": "The label (blank for blank text)",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "400": {"description": "#FINSENT! message", "content": {"text/plain": {}}},
                              **_errors(401, 503)}}},
            "/v1/models": {"get": {"summary": "OpenAI: list models",
                                   "responses": {"200": {"description": "Models"}, **_errors(401)}}},
            "/v1/chat/completions": {"post": {
                "summary": "OpenAI: chat completions (finsent-7/finsent-3 classify the last user message)",
                "requestBody": {"required": True, **_JSON("OpenAIRequest")},
                "responses": {"200": {"description": "Completion, or an SSE stream with stream=true"},
                              **_errors(400, 401, 404, 413, 503)}}},
            "/v1/completions": {"post": {
                "summary": "OpenAI: completions (finsent-7/finsent-3 classify the prompt)",
                "requestBody": {"required": True, **_JSON("OpenAIRequest")},
                "responses": {"200": {"description": "Completion, or an SSE stream with stream=true"},
                              **_errors(400, 401, 404, 413, 503)}}},
            "/health": {"get": {"summary": "Ready when the model is loaded", "security": [],
                                "responses": {"200": {"description": "Ready"}, "503": {"description": "Loading"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "Prometheus text format"}, **_errors(401)}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}, **_errors(401)}}},
        },
    }
