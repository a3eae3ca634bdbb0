"""API key and CORS.

- With an API key set, every route but /health needs `Authorization: Bearer <key>`. Spreadsheet
  formulas (WEBSERVICE) cannot send headers, so GET /v1/label also accepts `?key=<key>`.
- CORS headers are sent only for the origins listed in the config (none by default).
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from .errors import ApiError

OPEN_PATHS = {"/health"}


def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if request.path == "/v1/label":
        return request.args.get("key")
    return None


def init_app(app: Flask, config) -> None:
    origins = set(config.cors_origins)

    @app.before_request
    def check_key():
        if request.method == "OPTIONS" and request.headers.get("Origin") in origins:
            return app.make_default_options_response()  # CORS preflight carries no credentials
        if config.api_key and request.path not in OPEN_PATHS:
            key = _presented_key()
            if key is None or not hmac.compare_digest(key.encode(), config.api_key.encode()):
                raise ApiError(401, "invalid_api_key", "missing or invalid API key (send Authorization: Bearer <key>)")
        return None

    @app.after_request
    def cors(response):
        origin = request.headers.get("Origin")
        if origin and origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Max-Age"] = "600"
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                # Chromium asks before a public page may call a loopback address.
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response
