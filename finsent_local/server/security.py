"""Host check, API key and CORS.

- Without an API key, requests must name this machine in their Host header: a loopback name or
  address (localhost, *.localhost, 127.0.0.1, [::1], any port) or a host allowed with --allowed-host.
  A web page that rebinds its own domain to 127.0.0.1 (DNS rebinding) sends its domain as Host and is
  refused, so it cannot drive the keyless server from the user's browser.
- With an API key set, every route needs `Authorization: Bearer <key>` but /health and the files of
  the web page (/, /ui/...) and of the Office add-in (/addin/...): those hold no data, and the page
  asks for the key and sends it on each of its calls. Spreadsheet formulas (WEBSERVICE) cannot send
  headers, so GET /v1/label also accepts `?key=<key>`.
- CORS headers are sent only for the origins listed in the config (none by default).
- Browsers say where a request comes from (`Sec-Fetch-Site`). A request that another web site makes
  (an <img> or a no-cors fetch needs no CORS) is refused on the API routes unless its Origin is one
  allowed with --cors-origin: otherwise any page could make a keyless server work for it. Requests
  without that header (WEBSERVICE, curl, xlwings, the OpenAI clients) are not from a browser page.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Flask, request

from . import context
from .addin import is_addin_path
from .errors import ApiError
from .web import is_page_path

OPEN_PATHS = {"/health"}


def _is_open(path: str) -> bool:
    """Routes answered without the API key."""
    return path in OPEN_PATHS or is_page_path(path) or is_addin_path(path)


def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if request.path == "/v1/label":
        return request.args.get("key")
    return None


def host_name(host_header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower-cased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always the loopback interface
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def init_app(app: Flask) -> None:
    """The checks, reading the server's settings on each request (context.config())."""

    @app.before_request
    def check_host():
        config = context.config()
        if config.api_key:
            return None  # the key is the protection; a server off loopback always has one
        name = host_name(request.host)
        if not (is_loopback_name(name) or name in {h.lower() for h in config.allowed_hosts}):
            raise ApiError(403, "host_not_allowed",
                           f"requests for host {name[:100]!r} are refused: this server answers to localhost, "
                           "127.0.0.1 and [::1] (start it with --allowed-host NAME to add a name, or set an API key)")
        return None

    @app.before_request
    def check_site():
        if request.headers.get("Sec-Fetch-Site") == "cross-site" and not _is_open(request.path) \
                and request.headers.get("Origin") not in context.config().cors_origins:
            raise ApiError(403, "cross_site_refused",
                           "requests from other web sites are refused (start the server with --cors-origin ORIGIN "
                           "to allow one)")
        return None

    @app.before_request
    def check_key():
        config = context.config()
        if request.method == "OPTIONS" and request.headers.get("Origin") in config.cors_origins:
            return app.make_default_options_response()  # CORS preflight carries no credentials
        if config.api_key and not _is_open(request.path):
            key = _presented_key()
            if key is None or not hmac.compare_digest(key.encode(), config.api_key.encode()):
                where = " or ?key=<key> in the address" if request.path == "/v1/label" else ""
                raise ApiError(401, "invalid_api_key",
                               f"missing or invalid API key (send Authorization: Bearer <key>{where})")
        return None

    @app.after_request
    def cors(response):
        origin = request.headers.get("Origin")
        if origin and origin in context.config().cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Max-Age"] = "600"
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                # Chromium asks before a public page may call a loopback address.
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response
