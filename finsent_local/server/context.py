"""Access to the app's runtime from inside a request."""

from __future__ import annotations

from flask import current_app

from ..engine.service import ClassificationService
from .runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["finsent_runtime"]


def service() -> ClassificationService:
    return runtime().require_service()
