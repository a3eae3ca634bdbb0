"""The Flask app: an app factory, one blueprint per API, config passed in."""

from __future__ import annotations

from flask import Flask

from .config import CONFIG_KEY, ServerConfig
from .errors import register_error_handlers
from .runtime import Runtime

__all__ = ["ServerConfig", "create_app"]


def create_app(runtime: Runtime, config: ServerConfig = ServerConfig()) -> Flask:
    from . import addin, finsent_api, openai_api, ops, responses_api, security, web

    app = Flask("finsent_local", static_folder=None)  # the page's files are served by the web blueprint
    app.config["MAX_CONTENT_LENGTH"] = runtime.limits.max_body_bytes
    app.json.sort_keys = False  # keep labels in scale order
    app.extensions["finsent_runtime"] = runtime
    app.config[CONFIG_KEY] = config  # read at request time (context.config()), never captured
    register_error_handlers(app)
    security.init_app(app)
    ops.init_app(app)
    app.register_blueprint(finsent_api.blueprint)
    app.register_blueprint(openai_api.blueprint)
    app.register_blueprint(responses_api.blueprint)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(web.blueprint)
    app.register_blueprint(addin.blueprint)
    return app
