"""The web page at / : a small offline app (HTML, CSS and ES modules in static/) that calls /v1/classify.

The page and its assets are open (no API key: the page asks for the key and sends it on each call) but
still behind the host check. They are served with a strict Content-Security-Policy: scripts, styles and
connections from this server only, nothing inline, no frames, so a headline that contains markup can
never run as code even if a bug let it into the page as HTML.
"""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, request

from .errors import ApiError

blueprint = Blueprint("web", __name__)

ASSET_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Only these files are served: a fixed list, not a folder, so nothing else in the package leaks out.
ASSETS = ("index.html", "style.css", "app.js", "api.js", "tables.js", "xlsx.js", "chart.js", "icon.svg")

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated on every load (cheap: ETag), so a new version of the package shows at once.
    "Cache-Control": "no-cache",
}


def is_page_path(path: str) -> bool:
    return path == "/" or path.startswith("/ui/")


def _asset(name: str) -> Response:
    if name not in ASSETS:
        raise ApiError(404, "not_found", "no such file; the page is at /")
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    suffix = name[name.rindex("."):]
    response = Response(data, content_type=ASSET_TYPES[suffix])
    response.headers.update(PAGE_HEADERS)
    response.add_etag()
    return response.make_conditional(request)


@blueprint.get("/")
def page():
    return _asset("index.html")


@blueprint.get("/ui/<name>")
def asset(name: str):
    return _asset(name)
