"""The Flask app: an app factory, one blueprint per API, config passed in."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from .errors import register_error_handlers
from .runtime import Runtime


@dataclass(frozen=True)
class ServerConfig:
    api_key: str | None = None
    # Origins allowed to call from a browser (e.g. https://addin.xlwings.org for xlwings Lite); none by default.
    cors_origins: tuple[str, ...] = ()
    # Host names accepted besides loopback ones when no API key is set (DNS-rebinding protection).
    allowed_hosts: tuple[str, ...] = ()
    # The HTTPS listener's port, when there is one (the add-in's manifest over HTTP redirects there).
    https_port: int | None = None


def create_app(runtime: Runtime, config: ServerConfig = ServerConfig()) -> Flask:
    from . import addin, finsent_api, openai_api, ops, security, web

    app = Flask("finsent_local", static_folder=None)  # the page's files are served by the web blueprint
    app.config["MAX_CONTENT_LENGTH"] = runtime.limits.max_body_bytes
    app.json.sort_keys = False  # keep labels in scale order
    app.extensions["finsent_runtime"] = runtime
    app.extensions["finsent_config"] = config
    register_error_handlers(app)
    security.init_app(app, config)
    ops.init_app(app)
    app.register_blueprint(finsent_api.blueprint)
    app.register_blueprint(openai_api.blueprint)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(web.blueprint)
    app.register_blueprint(addin.blueprint)
    return app
