"""Operations: GET /health, GET /metrics, GET /openapi.json; request timing and the access log."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, request

from .context import runtime
from .metrics import RequestMetrics
from .openapi import openapi_spec

blueprint = Blueprint("ops", __name__)
access_log = logging.getLogger("finsent.access")


def init_app(app: Flask) -> None:
    metrics = RequestMetrics()
    app.extensions["finsent_metrics"] = metrics

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def record(response):
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.observe_request(request.method, route, response.status_code, seconds)
        hits = g.get("cache_hits")
        cache_note = "" if hits is None else f" cache_hits={hits}"
        access_log.info("%s %s %d %.1fms%s", request.method, route, response.status_code, seconds * 1000, cache_note)
        return response


@blueprint.get("/health")
def health():
    rt = runtime()
    if rt.ready:
        return {"status": "ok", "model": rt.model_id, "backend": rt.backend}
    status = "error" if rt.load_error else "loading"
    return {"status": status, "model": rt.model_id, "error": rt.load_error}, 503


@blueprint.get("/metrics")
def metrics():
    rt = runtime()
    queue = rt.service.worker.queued_texts if rt.service else 0
    text = current_app.extensions["finsent_metrics"].render(rt.counters, queue, rt.ready)
    return Response(text, mimetype="text/plain; version=0.0.4")


@blueprint.get("/openapi.json")
def openapi():
    return openapi_spec(runtime().model_id, runtime().limits)
