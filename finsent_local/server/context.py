"""Access to the app's runtime from inside a request."""

from __future__ import annotations

from flask import current_app

from ..service import ClassificationService
from ..worker import Busy
from .errors import ApiError
from .runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["finsent_runtime"]


def service() -> ClassificationService:
    return runtime().require_service()


def classify(texts: list, scheme: str) -> list[dict]:
    """The service's classify, with a full queue turned into 503 + Retry-After."""
    try:
        return service().classify(texts, scheme)
    except Busy as e:
        raise ApiError(503, "server_busy", f"{e}; retry shortly", retry_after=1) from None
