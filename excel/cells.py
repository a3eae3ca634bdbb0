"""What the Excel functions do, without xlwings: turn cell values into texts, ask a source (the server,
or the model itself for `finsent excel freeze --model`) with an in-process cache, so recalculation
does not re-query, and build the grid of results or messages. Texts of calls that arrive together
are gathered into few requests (batching.py).

Nothing here raises: every problem becomes a `#FINSENT! ...` message in the cell it concerns.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict

from finsent_local.client import DEFAULT_URL, MAX_EXPLAIN_WORDS, ClientError, FinSentClient, ServerNotRunning
from finsent_local.engine.labels import SCHEMES, default_schemes
from finsent_local.engine.occlusion import strongest, strongest_text, units
from finsent_local.excel.batching import EXPLAIN_UNIT, Batcher
from finsent_local.excel.functions import WHY_WORDS
from finsent_local.limits import DEFAULT_LIMITS

PREFIX = "#FINSENT! "
EXCEL_ERRORS = {"#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NUM!", "#NAME?", "#NULL!", "#SPILL!", "#CALC!", "#GETTING_DATA"}
MAX_TEXT_CHARS = DEFAULT_LIMITS.max_text_chars
SCHEME_CHOICES = " or ".join(f'"{name}"' for name in sorted(SCHEMES))  # '"3" or "7"'
CACHE_ENTRIES = 100_000
CACHE_BYTES = 64 * 1024 * 1024
ENTRY_OVERHEAD_BYTES = 2_000
LABELS_BY_SCHEME = {name: scheme.labels for name, scheme in default_schemes().items()}


def settings() -> tuple[str, str | None]:
    """Server URL and API key: environment (FINSENT_URL, FINSENT_API_KEY), then xlwings.conf."""
    url, key = os.environ.get("FINSENT_URL"), os.environ.get("FINSENT_API_KEY")
    if url is None or key is None:
        try:
            from xlwings.utils import read_user_config

            conf = read_user_config()
        except Exception:  # an unreadable config must not break the cell
            conf = {}
        url = url or conf.get("finsent_url")
        key = key or conf.get("finsent_api_key")
    return (url or DEFAULT_URL), (key or None)


class _ResultCache:
    """Results by (server, scheme, text), so a recalculation gives the same answer with no request.
    Bounded by entry count and by an estimate of the bytes held (texts may be 32,767 characters)."""

    def __init__(self, size: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES):
        self._items: OrderedDict = OrderedDict()
        self._sizes: dict = {}
        self._bytes = 0
        self._size = size
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    @staticmethod
    def _estimate(key) -> int:
        # Python strings take up to 4 bytes a character; a result holds a few dozen small objects.
        return 4 * sum(len(part) for part in key if isinstance(part, str)) + ENTRY_OVERHEAD_BYTES

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            if key in self._items:
                self._bytes -= self._sizes[key]
            self._items[key] = value
            self._items.move_to_end(key)
            self._sizes[key] = self._estimate(key)
            self._bytes += self._sizes[key]
            while self._items and (len(self._items) > self._size or self._bytes > self._max_bytes):
                old, _ = self._items.popitem(last=False)
                self._bytes -= self._sizes.pop(old)

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._sizes.clear()
            self._bytes = 0


results_cache = _ResultCache()


def normalize_scheme(scheme) -> str | None:
    """"7" or "3" (a number 7 or 3 too); an omitted or blank scheme is "7"; None when not a scheme."""
    if isinstance(scheme, float) and scheme.is_integer():
        scheme = int(scheme)
    value = str(scheme).strip() if scheme is not None else ""
    return (value or "7") if (value or "7") in SCHEMES else None


def as_grid(value) -> tuple[list[list], bool]:
    """A cell or a range as a 2-D list; whether it was a single cell."""
    if isinstance(value, list):
        if value and isinstance(value[0], list):
            return value, False
        return [value], False
    return [[value]], True


def _cell_problem(value) -> str | None:
    """Why a cell cannot be classified, or None when it holds text."""
    if isinstance(value, bool):
        return "not text (TRUE/FALSE)"
    if isinstance(value, (int, float)):
        return "not text (a number)"
    if isinstance(value, (dt.date, dt.datetime)):
        return "not text (a date)"
    if not isinstance(value, str):
        return "not text"
    if value.strip() in EXCEL_ERRORS:
        return f"the cell holds an error ({value.strip()})"
    if len(value) > MAX_TEXT_CHARS:
        return "text too long"
    return None


# -- where results come from ---------------------------------------------------------------------------
REQUEST_TIMEOUT_S = 60.0  # each /v1/classify request (at most batching.CHUNK_TEXTS texts)
DOCUMENT_TIMEOUT_S = 300.0  # a document is labelled sentence by sentence on the server: it may take a while
# Each /v1/explain request (at most MAX_EXPLAIN_WORDS words, about one classification each): the server
# answers 503 when it has not started on a request within max_wait_s or not finished it in as long again,
# so the cell waits for that answer rather than giving up first.
EXPLAIN_TIMEOUT_S = 2 * (DEFAULT_LIMITS.max_wait_s or 60.0) + 10.0


class ServerSource:
    """The FinSent server at `url`, over HTTP (each request with its own deadline)."""

    def __init__(self, url: str, api_key: str | None = None):
        self.url = url
        self.key = ("server", url, api_key)  # batches never mix servers or keys
        self.cache_name = url
        self._texts = FinSentClient(url, api_key, connect_timeout=2.0, timeout=REQUEST_TIMEOUT_S)
        self._documents = FinSentClient(url, api_key, connect_timeout=2.0, timeout=DOCUMENT_TIMEOUT_S)
        self._explanations = FinSentClient(url, api_key, connect_timeout=2.0, timeout=EXPLAIN_TIMEOUT_S)

    def _down(self) -> ServerNotRunning:
        return ServerNotRunning(f"server not running at {self.url} - start it with: finsent serve")

    def classify(self, texts: list[str], scheme: str) -> list[dict]:
        try:
            return self._texts.classify(texts, scheme)
        except ServerNotRunning:
            raise self._down() from None

    def document(self, text: str, scheme: str) -> dict:
        try:
            return self._documents.document(text, scheme)["document"]
        except ServerNotRunning:
            raise self._down() from None

    def explain(self, texts: list[str], scheme: str) -> list[dict]:
        """POST /v1/explain (the client keeps each request within MAX_EXPLAIN_WORDS words)."""
        try:
            return self._explanations.explain(texts, scheme, EXPLAIN_UNIT)
        except ServerNotRunning:
            raise self._down() from None


class ModelSource:
    """The model itself, through a classification service in this process (no server needed)."""

    def __init__(self, service, name: str):
        self.service = service
        self.key = ("model", name)
        self.cache_name = "model:" + name

    def classify(self, texts: list[str], scheme: str) -> list[dict]:
        return self.service.classify(texts, scheme)

    def explain(self, texts: list[str], scheme: str) -> list[dict]:
        return self.service.explain(texts, scheme, EXPLAIN_UNIT)

    def document(self, text: str, scheme: str) -> dict:
        from finsent_local.jobs.documents import DocumentTooLarge, classify_document

        try:
            return classify_document(text, scheme, self.service)["document"]
        except DocumentTooLarge as e:
            raise ClientError(str(e)) from None


def server_source() -> ServerSource | str:
    """The server the settings name, or a message when its URL is not usable."""
    url, key = settings()
    try:
        return ServerSource(url, key)
    except ClientError as e:
        return PREFIX + str(e)


def _remember(source, kind: str, scheme: str, text: str, result: dict) -> None:
    if kind == "explain":  # only what a cell shows: a long text's words would make the entry large
        result = {"label": result["label"], "score": result["score"], "words": strongest(result["words"], WHY_WORDS)}
    results_cache.put((source.cache_name, kind, scheme, text), result)


# One batcher for the process: every function call's texts go through it.
BATCHER = Batcher(on_result=_remember)


def _documents_summed(source, texts: list[str], scheme: str) -> tuple[dict, str | None]:
    """Each text as a document (one request each): its document result, or an error of its own (a
    document over the limits does not fail the others); a stopped server fails the call."""
    results = {}
    for text in texts:
        try:
            document = source.document(text, scheme)
        except ServerNotRunning as e:
            return results, str(e)
        except ClientError as e:
            results[text] = {"error": {"message": str(e)}}
            continue
        if document["label"] is None:
            results[text] = {"error": {"message": "no sentence could be classified"}}
        else:
            results[text] = {"label": document["label"], "score": document["score"]}
            results_cache.put((source.cache_name, "document", scheme, text), results[text])
    return results, None


def _too_many_words(text: str) -> dict | None:
    """An explanation's error for a text with more words than one /v1/explain request may hold (the
    server would refuse the request it is in), in the words of `finsent classify --explain`'s why cells."""
    words = len(units(text, EXPLAIN_UNIT))
    if words <= MAX_EXPLAIN_WORDS:
        return None
    return {"error": {"message": f"not explained: {words:,} words; at most {MAX_EXPLAIN_WORDS:,} are explained "
                                 "per text"}}


def classify_grid(value, scheme, render, source=None, kind: str = "text") -> list[list] | str:
    """Results for every cell of `value` (uncached texts asked together), shaped like the input.

    render(result) turns a result into the cell's value(s). `source`: where results come from (default:
    the server the settings name). kind "text" labels each cell's text (gathered with other calls'
    texts by BATCHER); "explain" explains it (/v1/explain, gathered likewise); "document" sums up each
    cell's sentences. Blank cells stay blank. Returns a single message string when nothing can be done
    (bad scheme, server down).
    """
    scheme_name = normalize_scheme(scheme)
    if scheme_name is None:
        return PREFIX + f"scheme must be {SCHEME_CHOICES}"
    if source is None:
        source = server_source()
        if isinstance(source, str):
            return source
    grid, _ = as_grid(value)
    to_ask: list[str] = []
    # Results found now are kept here: this call's own new results, stored in the bounded cache, may
    # push them out of it before the grid is built.
    fresh: dict = {}
    for row in grid:
        for cell in row:
            if isinstance(cell, str) and cell.strip() and _cell_problem(cell) is None and cell not in fresh:
                known = results_cache.get((source.cache_name, kind, scheme_name, cell))
                if known is None and kind == "explain":
                    known = _too_many_words(cell)  # not asked: never kept, the limit may change
                if known is None:
                    to_ask.append(cell)
                else:
                    fresh[cell] = known
    if to_ask:
        to_ask = list(dict.fromkeys(to_ask))
        if kind == "document":
            answered, failure = _documents_summed(source, to_ask, scheme_name)
        elif kind == "explain":
            answered, failure = BATCHER.explain(source, scheme_name, to_ask)
        else:
            answered, failure = BATCHER.classify(source, scheme_name, to_ask)
        fresh.update(answered)
        if failure:
            return PREFIX + failure
    out = []
    for row in grid:
        out_row = []
        for cell in row:
            if cell is None or (isinstance(cell, str) and not cell.strip()):
                out_row.append("")
                continue
            problem = _cell_problem(cell)
            if problem:
                out_row.append(PREFIX + problem)
                continue
            result = fresh.get(cell)
            if result is None or "error" in result:
                message = (result or {}).get("error", {}).get("message", "no result")
                out_row.append(PREFIX + message)
            else:
                out_row.append(render(result))
        out.append(out_row)
    return out


def document_grid(value, scheme, render, source=None) -> list[list] | str:
    """classify_grid for documents: each cell's text summed up from its sentences (/v1/documents)."""
    return classify_grid(value, scheme, render, source, kind="document")


def why_text(result: dict) -> str:
    """=FINSENT.WHY's cell: the strongest words with their weights ("cuts -0.41; guidance -0.12"), as
    `finsent classify --explain` writes them. A plain value, never a formula: a function's result is not
    parsed by Excel, whatever characters the text's words hold."""
    if not result["words"]:
        return PREFIX + "not explained: the text has no words"
    return strongest_text(result["words"], WHY_WORDS)


def probabilities_grid(value, scheme, source=None) -> list[list]:
    """=FINSENT_PROBS: a header row of label names, then each text's probabilities (cells read row by
    row); a blank or a message in the first column of its row."""
    scheme_name = normalize_scheme(scheme)
    grid_in, _ = as_grid(value)
    cells = [cell for row in grid_in for cell in row]
    grid = classify_grid([[c] for c in cells], scheme, lambda r: r["probs"], source)
    if isinstance(grid, str):
        return [[grid]]
    labels = next((list(v) for (v,) in grid if isinstance(v, dict)), None)
    if labels is None:  # nothing classified (all blank or messages): the scheme's own labels
        labels = list(LABELS_BY_SCHEME[scheme_name])
    out = [labels]
    for (cell_value,) in grid:
        if isinstance(cell_value, dict):
            out.append([cell_value[label] for label in labels])
        else:
            out.append([cell_value] + [""] * (len(labels) - 1))
    return out


def function_cells(name: str, text, scheme="7", source=None) -> list[list] | str:
    """What =NAME(text, scheme) shows, for each of the functions: a grid shaped like `text`
    (FINSENT_PROBS: header row plus one row per cell), or one message for the whole call."""
    if name in ("FINSENT.WHY", "FINSENT_WHY"):  # the add-in's name and xlwings' (functions.py)
        return classify_grid(text, scheme, why_text, source, kind="explain")
    if name == "FINSENT":
        return classify_grid(text, scheme, lambda r: r["label"], source)
    if name == "FINSENT_SCORE":
        return classify_grid(text, scheme, lambda r: r["score"], source)
    if name == "FINSENT_PROBS":
        return probabilities_grid(text, scheme, source)
    if name == "FINSENT_DOC":
        return document_grid(text, scheme, lambda r: r["label"], source)
    if name == "FINSENT_DOC_SCORE":
        return document_grid(text, scheme, lambda r: r["score"], source)
    raise ValueError(f"not a FinSent function: {name}")
