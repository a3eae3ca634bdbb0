"""Access to the app's runtime and settings from inside a request."""

from __future__ import annotations

from flask import current_app

from ..engine.service import ClassificationService
from .config import CONFIG_KEY, ServerConfig
from .runtime import Runtime


def config() -> ServerConfig:
    return current_app.config[CONFIG_KEY]


def runtime() -> Runtime:
    return current_app.extensions["finsent_runtime"]


def service() -> ClassificationService:
    return runtime().require_service()
