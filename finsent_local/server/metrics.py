"""Request metrics in Prometheus' text format (kept by hand: a few counters and histograms)."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


class Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.n += 1
        self.total += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}" if labels else f"{name}_sum {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.n}" if labels else f"{name}_count {self.n}")
        return out


class RequestMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_sizes = Histogram(BATCH_BUCKETS)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def render(self, counters, queue_depth: int, ready: bool) -> str:
        with counters.lock:
            sizes, counters.batch_sizes = counters.batch_sizes, []
            hits, misses, classified = counters.cache_hits, counters.cache_misses, counters.texts_classified
        with self._lock:
            for size in sizes:
                self.batch_sizes.observe(size)
            lines = ["# HELP finsent_requests_total HTTP requests by route and status.",
                     "# TYPE finsent_requests_total counter"]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'finsent_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            lines += ["# HELP finsent_request_duration_seconds Request latency by route.",
                      "# TYPE finsent_request_duration_seconds histogram"]
            for route, hist in sorted(self.latency.items()):
                lines += hist.lines("finsent_request_duration_seconds", f'route="{route}"')
            lines += ["# HELP finsent_batch_texts Texts per llama_decode batch.", "# TYPE finsent_batch_texts histogram"]
            lines += self.batch_sizes.lines("finsent_batch_texts")
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
