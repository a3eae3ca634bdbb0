"""Request metrics in Prometheus' text format (kept by hand: a few counters and histograms)."""

from __future__ import annotations

import threading
from collections import defaultdict

from ..stats import Histogram

KNOWN_METHODS = {"GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE", "PATCH"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RequestMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}  # one per route (a fixed set)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in KNOWN_METHODS:  # clients choose the method: keep the label set bounded
            method = "other"
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def render(self, counters, queue_depth: int, ready: bool) -> str:
        with counters.lock:
            hits, misses, classified = counters.cache_hits, counters.cache_misses, counters.texts_classified
            batch_lines = counters.batch_sizes.lines("finsent_batch_texts")
        with self._lock:
            lines = ["# HELP finsent_requests_total HTTP requests by route and status.",
                     "# TYPE finsent_requests_total counter"]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'finsent_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            lines += ["# HELP finsent_request_duration_seconds Request latency by route.",
                      "# TYPE finsent_request_duration_seconds histogram"]
            for route, hist in sorted(self.latency.items()):
                lines += hist.lines("finsent_request_duration_seconds", f'route="{route}"')
            lines += ["# HELP finsent_batch_texts Texts per llama_decode batch.", "# TYPE finsent_batch_texts histogram"]
            lines += batch_lines
        lines += [
            "# HELP finsent_cache_hits_total Texts answered from the result cache.",
            "# TYPE finsent_cache_hits_total counter", f"finsent_cache_hits_total {hits}",
            "# HELP finsent_cache_misses_total Texts that needed inference.",
            "# TYPE finsent_cache_misses_total counter", f"finsent_cache_misses_total {misses}",
            "# HELP finsent_texts_classified_total Texts run through the model.",
            "# TYPE finsent_texts_classified_total counter", f"finsent_texts_classified_total {classified}",
            "# HELP finsent_queue_texts Texts waiting for the engine.", "# TYPE finsent_queue_texts gauge",
            f"finsent_queue_texts {queue_depth}",
            "# HELP finsent_model_ready 1 when the model is loaded.", "# TYPE finsent_model_ready gauge",
            f"finsent_model_ready {int(ready)}",
        ]
        return "\n".join(lines) + "\n"
