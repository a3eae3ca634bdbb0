"""A small HTTP client for the FinSent server (standard library only), shared by excel/ and Python users.

Every call has a short connect timeout and a total deadline, so a caller (Excel) never hangs.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

from .limits import DEFAULT_LIMITS

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_TEXTS_PER_REQUEST = DEFAULT_LIMITS.max_texts_per_request
MAX_EXPLAIN_WORDS = DEFAULT_LIMITS.max_explain_words


class ClientError(Exception):
    """A problem to show the user, as one sentence."""


class ServerNotRunning(ClientError):
    pass


class FinSentClient:
    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None,
                 connect_timeout: float = 2.0, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"invalid server URL {base_url!r}")
        self._parts = parts
        self.api_key = api_key
        self.connect_timeout = connect_timeout
        self.timeout = timeout

    def _request(self, method: str, path: str, body: dict | None, deadline: float) -> dict:
        connection_class = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(self._parts.hostname, self._parts.port, timeout=self.connect_timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            connection.connect()
            connection.sock.settimeout(max(0.1, deadline - time.monotonic()))
            connection.request(method, (self._parts.path or "") + path,
                               body=json.dumps(body).encode() if body is not None else None, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (ConnectionRefusedError, socket.gaierror) as e:
            raise ServerNotRunning(f"server not running at {self.base_url}") from e
        except (TimeoutError, socket.timeout) as e:
            raise ClientError(f"server at {self.base_url} did not answer in time") from e
        except OSError as e:
            raise ServerNotRunning(f"server not reachable at {self.base_url} ({e.strerror or e})") from e
        finally:
            connection.close()
        try:
            data = json.loads(raw)
        except ValueError:
            raise ClientError(f"unexpected answer from {self.base_url} (HTTP {response.status}; is it FinSent Local?)") from None
        if response.status != 200:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise ClientError(error.get("message") or f"server error (HTTP {response.status})")
        return data

    def health(self) -> dict:
        """The server's /health answer; raises ClientError when it is down, loading or not FinSent."""
        return self._request("GET", "/health", None, time.monotonic() + self.timeout)

    def status(self) -> dict:
        """GET /v1/status: the model, its label schemes and the server's limits."""
        return self._request("GET", "/v1/status", None, time.monotonic() + self.timeout)

    def document(self, text: str, scheme: str = "7", about: str | list[str] | None = None,
                 explain: bool = False) -> dict:
        """POST /v1/documents: {"document": {...}, "sentences": [...]} for one text; `about` keeps the
        sentences naming one of these names; `explain` adds the words of the strongest sentences."""
        body = {"text": text, "scheme": scheme}
        if about:
            body["about"] = about
        if explain:
            body["explain"] = True
        return self._request("POST", "/v1/documents", body, time.monotonic() + self.timeout)

    def classify(self, texts: list[str], scheme: str = "7") -> list[dict]:
        """One result dict per text (label, score, probs, ... or error), in order. Each request (at most
        MAX_TEXTS_PER_REQUEST texts) has a deadline of its own: a long list on a slow CPU is not cut
        short by one deadline for the whole list."""
        results: list[dict] = []
        for start in range(0, len(texts), MAX_TEXTS_PER_REQUEST):
            chunk = texts[start : start + MAX_TEXTS_PER_REQUEST]
            results += self._request("POST", "/v1/classify", {"texts": chunk, "scheme": scheme},
                                     time.monotonic() + self.timeout)["results"]
        return results

    def explain(self, texts: list[str], scheme: str = "7", unit: str = "word") -> list[dict]:
        """POST /v1/explain: one dict per text (label, score, probs, words: start, end, text, weight,
        label_weight, label_without; or error), in order. Texts are sent in requests of at most
        MAX_EXPLAIN_WORDS words (a text longer than that alone, which the server refuses with its own
        message), each request with a deadline of its own."""
        results: list[dict] = []
        for chunk in explain_requests(texts, unit):
            results += self._request("POST", "/v1/explain", {"texts": chunk, "scheme": scheme, "unit": unit},
                                     time.monotonic() + self.timeout)["results"]
        return results


def explain_requests(texts: list, unit: str = "word", max_words: int = MAX_EXPLAIN_WORDS,
                     max_texts: int = MAX_TEXTS_PER_REQUEST) -> list[list]:
    """`texts` cut into consecutive requests of at most max_words words (and max_texts texts)."""
    from .engine.occlusion import units

    requests: list[list] = []
    chunk: list = []
    words = 0
    for text in texts:
        n = len(units(text, unit)) if isinstance(text, str) else 0
        if chunk and (words + n > max_words or len(chunk) == max_texts):
            requests.append(chunk)
            chunk, words = [], 0
        chunk.append(text)
        words += n
    if chunk:
        requests.append(chunk)
    return requests
