"""A mixed, bounded load against a running FinSent server, as many clients at once.

Each client sends a fixed number of requests, cycling through: classification batches (with a bad
item mixed in), GET /v1/label, OpenAI chat classification, streamed generation by the raw model
(every other stream is dropped by the client after a few events), and hostile requests (invalid
JSON, NaN, deep nesting, a foreign Host header, a lone surrogate). Only loopback addresses are used,
and every loop is bounded by count and by time.

`LoadReport.problems()` lists what breaks the server's promises: a 5xx other than 503, a 503 without
Retry-After, a label that is not one of the scheme's, a bad request answered with anything but 4xx.
Used by tests/test_load.py (small) and bench/reliability_bench.py (the figures in bench/RESULTS.md).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from finsent_local.engine.labels import LABELS_3, LABELS_7

CLASSIFY_KINDS = ("classify_batch", "label", "chat_classify")
KINDS = ("classify_batch", "label", "chat_classify", "stream", "hostile")


@dataclass
class LoadReport:
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_kind: Counter = field(default_factory=Counter)
    latency_with_generation: list[float] = field(default_factory=list)  # classification, while a stream runs
    latency_without_generation: list[float] = field(default_factory=list)
    dropped_streams: int = 0
    finished_streams: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def problems(self) -> list[str]:
        return self.violations

    @staticmethod
    def _percentile(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict:
        during = self.latency_with_generation
        return {
            "requests": self.requests, "seconds": round(self.seconds, 1),
            "by_status": dict(sorted(self.by_status.items())), "by_kind": dict(sorted(self.by_kind.items())),
            "classification_p50_ms_during_generation": round(1000 * self._percentile(during, 0.5), 1),
            "classification_p99_ms_during_generation": round(1000 * self._percentile(during, 0.99), 1),
            "classification_during_generation": len(during),
            "classification_p50_ms_otherwise": round(1000 * self._percentile(self.latency_without_generation, 0.5), 1),
            "streams_finished": self.finished_streams, "streams_dropped_by_client": self.dropped_streams,
            "violations": len(self.violations),
        }


class _Load:
    def __init__(self, url: str, model_id: str, texts: list[str], timeout_s: float):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.model_id = model_id
        self.texts = texts
        self.timeout_s = timeout_s
        self.report = LoadReport()
        self.lock = threading.Lock()
        self.active_streams = 0

    # -- one request ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            payload = response.read()
            return response.status, response.getheader("Retry-After"), payload
        finally:
            connection.close()

    def _record(self, kind: str, status: int, retry_after, detail: str = "") -> None:
        with self.lock:
            self.report.requests += 1
            self.report.by_status[status] += 1
            self.report.by_kind[kind] += 1
            if status >= 500 and status != 503:
                self.report.violations.append(f"{kind}: HTTP {status} {detail[:200]}")
            if status == 503 and not retry_after:
                self.report.violations.append(f"{kind}: 503 without Retry-After")

    def _violation(self, message: str) -> None:
        with self.lock:
            self.report.violations.append(message)

    def _timed_classification(self, kind: str, call):
        generating = self.active_streams > 0
        started = time.perf_counter()
        status, retry_after, payload = call()
        seconds = time.perf_counter() - started
        self._record(kind, status, retry_after, payload.decode("utf-8", "replace"))
        if status == 200:
            with self.lock:
                (self.report.latency_with_generation if generating else self.report.latency_without_generation).append(seconds)
        return status, payload

    # -- the mix ----------------------------------------------------------------------------------
    def classify_batch(self, rng: random.Random) -> None:
        batch = rng.sample(self.texts, k=min(len(self.texts), rng.randint(1, 12)))
        bad = rng.choice(["", "   ", 42, None, "x" * 40_000])
        batch.insert(rng.randrange(len(batch) + 1), bad)
        scheme = rng.choice(["7", "3"])
        status, payload = self._timed_classification("classify_batch", lambda: self._request(
            "POST", "/v1/classify", {"texts": batch, "scheme": scheme}))
        if status == 200:
            labels = LABELS_7 if scheme == "7" else LABELS_3
            results = json.loads(payload)["results"]
            for text, result in zip(batch, results):
                good = isinstance(text, str) and text.strip() and len(text) <= 32_767
                if good and result.get("label") not in labels:
                    self._violation(f"classify_batch: invalid label {result.get('label')!r} for {text!r}")
                if not good and "error" not in result:
                    self._violation(f"classify_batch: no item error for {text!r}")

    def label(self, rng: random.Random) -> None:
        text = rng.choice(self.texts)
        status, payload = self._timed_classification("label", lambda: self._request(
            "GET", f"/v1/label?scheme=3&text={quote(text)}"))
        if status == 200 and payload.decode() not in LABELS_3:
            self._violation(f"label: invalid label {payload!r}")

    def chat_classify(self, rng: random.Random) -> None:
        text = rng.choice(self.texts)
        status, payload = self._timed_classification("chat_classify", lambda: self._request(
            "POST", "/v1/chat/completions", {"model": "finsent-7", "messages": [{"role": "user", "content": text}]}))
        if status == 200 and json.loads(payload)["choices"][0]["message"]["content"] not in LABELS_7:
            self._violation(f"chat_classify: invalid label in {payload[:200]!r}")

    def stream(self, rng: random.Random) -> None:
        drop = rng.random() < 0.5
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        body = {"model": self.model_id, "prompt": rng.choice(self.texts), "max_tokens": rng.randint(32, 256),
                "temperature": 1.0, "seed": rng.randrange(1000), "stream": True}
        with self.lock:
            self.active_streams += 1
        try:
            connection.request("POST", "/v1/completions", body=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            self._record("stream", response.status, response.getheader("Retry-After"))
            if response.status != 200:
                response.read()
                return
            events = 0
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                line = response.readline()
                if not line or line.startswith(b"data: [DONE]"):
                    break
                if line.startswith(b"data: "):
                    events += 1
                    if b'"error"' in line and b"shutting_down" not in line:
                        self._violation(f"stream: error event {line[:200]!r}")
                    if drop and events >= 3:
                        break  # the client goes away mid-stream
            with self.lock:
                if drop:
                    self.report.dropped_streams += 1
                else:
                    self.report.finished_streams += 1
        finally:
            connection.close()
            with self.lock:
                self.active_streams -= 1

    def hostile(self, rng: random.Random) -> None:
        choice = rng.randrange(5)
        if choice == 0:
            status, retry, payload = self._request("POST", "/v1/classify", raw=b'{"texts": [')
        elif choice == 1:
            status, retry, payload = self._request("POST", "/v1/completions",
                                                   raw=b'{"model": "finsent-3", "prompt": "x", "max_tokens": NaN}')
        elif choice == 2:
            status, retry, payload = self._request("POST", "/v1/classify", raw=b"[" * 50_000 + b"]" * 50_000)
        elif choice == 3:
            status, retry, payload = self._request("GET", "/v1/label?text=x", headers={"Host": "rebind.example"})
        else:
            status, retry, payload = self._request("POST", "/v1/classify", raw=b'{"texts": ["\\ud800"]}')
            if status == 200 and json.loads(payload)["results"][0].get("error", {}).get("code") != "invalid_text":
                self._violation(f"hostile: lone surrogate not an item error: {payload[:200]!r}")
            self._record("hostile", status, retry, payload.decode("utf-8", "replace"))
            return
        self._record("hostile", status, retry, payload.decode("utf-8", "replace"))
        if not 400 <= status < 500:
            self._violation(f"hostile #{choice}: HTTP {status}, expected 4xx")

    def client(self, index: int, n_requests: int, seed: int, deadline: float) -> None:
        rng = random.Random(seed * 1000 + index)
        for i in range(n_requests):
            if time.monotonic() > deadline:
                return
            kind = KINDS[(index + i) % len(KINDS)]
            try:
                getattr(self, kind)(rng)
            except (OSError, http.client.HTTPException, ValueError) as e:
                self._violation(f"{kind}: {type(e).__name__}: {e}")


def run_load(url: str, model_id: str, texts: list[str], clients: int = 32, requests_per_client: int = 8,
             seed: int = 0, timeout_s: float = 120.0, max_seconds: float = 600.0) -> LoadReport:
    load = _Load(url, model_id, texts, timeout_s)
    deadline = time.monotonic() + max_seconds
    started = time.perf_counter()
    threads = [threading.Thread(target=load.client, args=(i, requests_per_client, seed, deadline), daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + timeout_s)
    load.report.seconds = time.perf_counter() - started
    return load.report


def get_json(url: str, timeout_s: float = 60) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict, timeout_s: float = 120) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def sigkill_under_load(proc, url: str, model_id: str, texts: list[str], clients: int = 8,
                       seconds_before_kill: float = 1.5) -> None:
    """Start a load, SIGKILL the server process in the middle of it, and wait for both to end."""
    load = threading.Thread(target=run_load, args=(url, model_id, texts), daemon=True,
                            kwargs={"clients": clients, "requests_per_client": 50, "timeout_s": 10, "max_seconds": 30})
    load.start()
    time.sleep(seconds_before_kill)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    load.join(60)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

