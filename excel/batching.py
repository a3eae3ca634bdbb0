"""Gathers the texts of Excel function calls that arrive together into few /v1/classify requests
(and the texts of =FINSENT.WHY calls into few /v1/explain requests).

With xlwings' async mode each call runs in a thread of its own, so a column of 2,000 single-cell
`=FINSENT(A2)` formulas recalculating is 2,000 calls at once. Each call hands its uncached texts to
the batcher and waits; after BATCH_DELAY_S the batcher sends the texts of every call that arrived
(deduplicated, per source, scheme and kind) in requests of at most CHUNK_TEXTS texts, and hands each
call its answers; explanations go in requests of at most the server's max_explain_words words (each
word costs about one classification). The Office add-in's functions.js does the same in JavaScript.

Each request has a deadline of its own, and every answered chunk is handed to `on_result` (the cells'
result cache) as soon as it arrives. A call returns as soon as its own texts are answered, so a
column of single-cell formulas fills in chunk by chunk; a range formula returns when all of its texts
are in. A chunk that times out costs only its own texts (and those not asked yet): everything answered
is kept, and a recalculation asks only for the rest.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from finsent_local.client import ClientError, ServerNotRunning, explain_requests

BATCH_DELAY_S = 0.05  # how long the first call of a recalculation waits for the others
# Texts per request: one engine turn on the server, so each request ends well within its own deadline
# even on a slow CPU, and a timeout loses at most this many answers.
CHUNK_TEXTS = 64
CHUNK_BYTES = 2 * 1024 * 1024  # JSON bytes of texts per request: half the server's body limit
EXPLAIN_UNIT = "word"  # =FINSENT.WHY weighs single words


@dataclass
class _Call:
    source: object
    scheme: str
    texts: list[str]
    kind: str = "text"  # "text": labels (/v1/classify); "explain": words (/v1/explain)
    done: threading.Event = field(default_factory=threading.Event)
    results: dict = field(default_factory=dict)
    failure: str | None = None


def chunks(texts: list[str], most: int = CHUNK_TEXTS, most_bytes: int = CHUNK_BYTES) -> list[list[str]]:
    """`texts` cut into requests of at most `most` texts and about `most_bytes` of JSON."""
    out, current, size = [], [], 0
    for text in texts:
        length = len(json.dumps(text))  # the client sends ASCII JSON: these are its bytes
        if current and (len(current) >= most or size + length > most_bytes):
            out.append(current)
            current, size = [], 0
        current.append(text)
        size += length
    if current:
        out.append(current)
    return out


def explain_chunks(texts: list[str], most: int = CHUNK_TEXTS) -> list[list[str]]:
    """`texts` cut into /v1/explain requests: within `most` texts and CHUNK_BYTES, and within the
    client's per-request word limit (client.explain_requests, which the server's limit sets)."""
    return [part for chunk in chunks(texts, most) for part in explain_requests(chunk, EXPLAIN_UNIT)]


# A call never waits longer than this for the batcher, whatever happens to it (each request has its
# own, shorter deadline; this only bounds a bug or a thread that could not start).
CALL_WAIT_S = 900.0


class Batcher:
    """`classify(source, scheme, texts)` and `explain(source, scheme, texts)` from any number of threads:
    ({text: result}, failure).

    A source has `.key` (which server: calls to different servers or with different keys are never
    mixed), `.classify(texts, scheme)` and `.explain(texts, scheme)` (one request each). A failure is a
    message for the whole call (the server is not running); a result with "error" is one text's problem
    (including a request that timed out). on_result(source, kind, scheme, text, result) gets each
    answered text (kind "text" or "explain"). A call returns as soon as all of its own texts are answered, so single cells fill
    in chunk by chunk while the rest of a recalculation is still being asked."""

    def __init__(self, on_result: Callable[[object, str, str, str, dict], None] = lambda *a: None,
                 delay_s: float = BATCH_DELAY_S, chunk_texts: int = CHUNK_TEXTS):
        self.on_result = on_result
        self.delay_s = delay_s
        self.chunk_texts = chunk_texts
        self._lock = threading.Lock()
        self._pending: list[_Call] = []
        self._timer: threading.Timer | None = None

    def classify(self, source, scheme: str, texts: list[str]) -> tuple[dict, str | None]:
        return self._gathered(_Call(source, scheme, list(texts), "text"))

    def explain(self, source, scheme: str, texts: list[str]) -> tuple[dict, str | None]:
        """As classify, for explanations (each text's words and weights); on_result gets kind "explain"."""
        return self._gathered(_Call(source, scheme, list(texts), "explain"))

    def _gathered(self, call: _Call) -> tuple[dict, str | None]:
        with self._lock:
            self._pending.append(call)
            if self._timer is None:
                timer = threading.Timer(self.delay_s, self._flush)
                timer.daemon = True
                timer.start()  # if this raises (no thread to be had), no timer is left set
                self._timer = timer
        if not call.done.wait(CALL_WAIT_S):
            return call.results, "no answer in time from the batching thread (internal error)"
        return call.results, call.failure

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending, self._timer = self._pending, [], None
        try:
            groups: dict[tuple, tuple[object, str, dict, list[_Call]]] = {}
            for call in batch:
                _, _, texts, calls = groups.setdefault((call.source.key, call.scheme, call.kind),
                                                       (call.source, call.scheme, {}, []))
                texts.update(dict.fromkeys(call.texts))
                calls.append(call)
            for (_, _, kind), (source, scheme, texts, calls) in groups.items():
                answers, failure = self._ask(source, scheme, list(texts), calls, kind)
                for call in calls:
                    if not call.done.is_set():
                        call.results = {t: answers[t] for t in call.texts if t in answers}
                        call.failure = failure
                        call.done.set()
        except Exception as e:  # a bug here must not leave Excel's cells waiting forever
            for call in batch:
                call.failure = call.failure or f"internal error ({type(e).__name__}: {e})"
        finally:
            for call in batch:
                call.done.set()

    def _ask(self, source, scheme: str, texts: list[str], calls: list[_Call],
             kind: str = "text") -> tuple[dict, str | None]:
        answers: dict[str, dict] = {}
        explaining = kind == "explain"
        parts = explain_chunks(texts, self.chunk_texts) if explaining else chunks(texts, self.chunk_texts)
        for n, chunk in enumerate(parts):
            try:
                results = source.explain(chunk, scheme) if explaining else source.classify(chunk, scheme)
            except ServerNotRunning as e:
                return answers, str(e)
            except ClientError as e:
                # This request failed or timed out: its texts and the ones not asked yet get the
                # message; what was answered is kept (a recalculation asks only the rest).
                for text in (t for part in parts[n:] for t in part):
                    answers[text] = {"error": {"message": str(e)}}
                return answers, None
            for text, result in zip(chunk, results):
                answers[text] = result
                if "error" not in result:
                    self.on_result(source, kind, scheme, text, result)
            for call in calls:  # the calls whose texts are all answered now go back to their cells
                if not call.done.is_set() and all(t in answers for t in call.texts):
                    call.results = {t: answers[t] for t in call.texts}
                    call.done.set()
        return answers, None
