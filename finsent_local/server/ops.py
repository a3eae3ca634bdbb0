"""Operations: GET /health, GET /v1/status, GET /metrics, GET /openapi.json; request timing and the access log."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, g, request

from .. import __version__
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


@blueprint.get("/v1/status")
def status():
    """What the web page shows at a glance, as JSON: model file, backend, label sets, limits, cache use."""
    rt = runtime()
    counters = rt.counters
    with counters.lock:
        hits, misses, classified = counters.cache_hits, counters.cache_misses, counters.texts_classified
    svc = rt.service
    try:
        model_bytes = rt.model_path.stat().st_size
    except OSError:
        model_bytes = None
    return {
        "status": "ok" if rt.ready else ("error" if rt.load_error else "loading"),
        "error": rt.load_error,
        "version": __version__,
        "model": rt.model_id,
        "model_file": rt.model_path.name,
        "adapter_file": Path(rt.engine_options.lora_path).name if rt.engine_options.lora_path else None,
        "model_bytes": model_bytes,
        "backend": rt.backend,
        "extra_cpu_buffers": svc.engine.cpu_buffers.use if svc else None,
        "schemes": {name: {"labels": list(s.labels), "values": list(s.values)}
                    for name, s in (svc.schemes.items() if svc else ())},
        "limits": {"max_texts_per_request": rt.limits.max_texts_per_request,
                   "max_text_chars": rt.limits.max_text_chars, "max_body_bytes": rt.limits.max_body_bytes,
                   "max_document_chars": rt.limits.max_document_chars,
                   "max_document_sentences": rt.limits.max_document_sentences,
                   "max_explain_words": rt.limits.max_explain_words},
        "cache": {"enabled": bool(svc and svc.cache), "hits": hits, "misses": misses,
                  "hit_rate": hits / (hits + misses) if hits + misses else None},
        "texts_classified": classified,
        "queued_texts": svc.worker.queued_texts if svc else 0,
    }


@blueprint.get("/metrics")
def metrics():
    rt = runtime()
    queue = rt.service.worker.queued_texts if rt.service else 0
    text = current_app.extensions["finsent_metrics"].render(rt.counters, queue, rt.ready)
    return Response(text, mimetype="text/plain; version=0.0.4")


@blueprint.get("/openapi.json")
def openapi():
    return openapi_spec(runtime().model_id, runtime().limits)
