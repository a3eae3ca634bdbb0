"""Every error the server returns, in one shape (OpenAI's, so OpenAI clients show the message):

    {"error": {"message": "...", "type": "invalid_request_error", "code": "empty_text", "param": null}}
"""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from ..engine.worker import Unavailable

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
          500: "server_error", 503: "server_error"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"), "code": code,
                      "param": param}}


def _response(err: ApiError):
    response = jsonify(error_body(err.status, err.code, err.message, err.param))
    response.status_code = err.status
    if err.retry_after is not None:
        response.headers["Retry-After"] = str(err.retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    """The one place where failures become HTTP answers."""
    app.register_error_handler(ApiError, _response)

    @app.errorhandler(Unavailable)
    def unavailable(e: Unavailable):  # overload, a wait too long, shutting down: always 503 + Retry-After
        return _response(ApiError(503, e.code, f"{e}; retry shortly", retry_after=e.retry_after))

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 400: "bad_request"}
        messages = {413: f"request body too large (at most {app.config.get('MAX_CONTENT_LENGTH')} bytes)",
                    404: "no such route; see /openapi.json"}
        response = _response(ApiError(e.code or 500, codes.get(e.code, "http_error"), messages.get(e.code, e.description)))
        for name, value in e.get_headers():
            if name.lower() == "allow":  # a 405 says which methods the route takes (RFC 9110)
                response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        app.logger.exception("unhandled error")
        return _response(ApiError(500, "internal_error", f"internal error: {type(e).__name__}"))
