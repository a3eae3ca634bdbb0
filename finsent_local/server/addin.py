"""The Office add-in's files at /addin/: the custom functions (functions.js, its page, functions.json
generated from the same definitions as the xlwings functions), icons, and a manifest for this server.

Like the web page, they are open (no API key) but behind the host check. Excel on the web shows the
functions' page in a frame of its own site, so these responses allow Microsoft's Office origins as
frame ancestors (and only those); Office.js itself is loaded from Microsoft's CDN, as Office requires.
"""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, jsonify, redirect, request

from ..excel.addin_manifest import ManifestError, manifest_xml
from ..excel.functions import custom_functions_metadata
from . import context
from .errors import ApiError

blueprint = Blueprint("addin", __name__, url_prefix="/addin")

FILE_TYPES = {
    "functions.js": "text/javascript; charset=utf-8",
    "freeze.js": "text/javascript; charset=utf-8",
    "functions.html": "text/html; charset=utf-8",
    "icon-16.png": "image/png",
    "icon-32.png": "image/png",
    "icon-64.png": "image/png",
    "icon-80.png": "image/png",
}
OFFICE_FRAME_ANCESTORS = ("https://*.officeapps.live.com", "https://*.office.com", "https://*.office365.com",
                          "https://*.cloud.microsoft", "https://*.sharepoint.com", "https://*.microsoft.com")
ADDIN_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'self' " + " ".join(OFFICE_FRAME_ANCESTORS)
                               + "; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Office keeps add-in files a long time; revalidating (ETag) makes a new version show at once.
    "Cache-Control": "no-cache",
}


def is_addin_path(path: str) -> bool:
    return path.startswith("/addin/")


def _finish(response: Response) -> Response:
    response.headers.update(ADDIN_HEADERS)
    response.add_etag()
    return response.make_conditional(request)


@blueprint.get("/<name>")
def addin_file(name: str):
    if name not in FILE_TYPES:
        raise ApiError(404, "not_found", "no such add-in file; the manifest is at /addin/manifest.xml")
    data = resources.files("finsent_local.excel").joinpath("addin", name).read_bytes()
    response = Response(data, content_type=FILE_TYPES[name])
    return _finish(response)


@blueprint.get("/functions.json")
def functions_metadata():
    return _finish(jsonify(custom_functions_metadata()))


@blueprint.get("/manifest.xml")
def manifest():
    """The manifest for the HTTPS address this request came to. Asked over plain HTTP: a redirect to the
    HTTPS listener when there is one, else 404 saying how to start one."""
    if request.scheme != "https":
        https_port = context.config().https_port
        if https_port:
            return redirect(f"https://localhost:{https_port}/addin/manifest.xml", code=307)
        raise ApiError(404, "https_required", "the add-in is served over HTTPS only (Excel loads add-ins over "
                       "HTTPS only): start the server with --https-port 8443, then open "
                       "https://localhost:8443/addin/manifest.xml")
    try:
        xml = manifest_xml(f"https://{request.host}")
    except ManifestError as e:
        raise ApiError(404, "https_required", str(e)) from None
    response = Response(xml, mimetype="application/xml")
    response.headers["Content-Disposition"] = 'attachment; filename="finsent-local-manifest.xml"'
    return _finish(response)
