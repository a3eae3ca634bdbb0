"""What the Excel functions do, without xlwings: turn cell values into texts, ask the server (with an
in-process cache, so recalculation does not re-query), and build the grid of results or messages.

Nothing here raises: every problem becomes a `#FINSENT! ...` message in the cell it concerns.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict

from finsent_local.client import DEFAULT_URL, ClientError, FinSentClient, ServerNotRunning
from finsent_local.engine.labels import SCHEMES, default_schemes
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


def _texts_classified(client: FinSentClient, texts: list[str], scheme: str) -> list[dict]:
    return client.classify(texts, scheme)  # one request per 256 texts


def _documents_summed(client: FinSentClient, texts: list[str], scheme: str) -> list[dict]:
    """Each text as a document (one /v1/documents request each): its document result, or an error of
    its own (a document over the limits does not fail the others)."""
    results = []
    for text in texts:
        try:
            document = client.document(text, scheme)["document"]
        except ServerNotRunning:
            raise
        except ClientError as e:
            results.append({"error": {"message": str(e)}})
            continue
        if document["label"] is None:
            results.append({"error": {"message": "no sentence could be classified"}})
        else:
            results.append({"label": document["label"], "score": document["score"]})
    return results


def classify_grid(value, scheme, render, ask=_texts_classified, kind: str = "text",
                  timeout_s: float = 60.0) -> list[list] | str:
    """Results for every cell of `value` (uncached texts asked together), shaped like the input.

    render(result) turns a server result into the cell's value(s); ask(client, texts, scheme) gets the
    results (kind names them in the cache: "text" or "document"). Blank cells stay blank. Returns a
    single message string when nothing can be done (bad scheme, server down).
    """
    scheme_name = normalize_scheme(scheme)
    if scheme_name is None:
        return PREFIX + f"scheme must be {SCHEME_CHOICES}"
    grid, _ = as_grid(value)
    url, key = settings()
    to_ask: list[str] = []
    for row in grid:
        for cell in row:
            if isinstance(cell, str) and cell.strip() and _cell_problem(cell) is None:
                if results_cache.get((url, kind, scheme_name, cell)) is None and cell not in to_ask:
                    to_ask.append(cell)
    if to_ask:
        try:
            answers = ask(FinSentClient(url, key, connect_timeout=2.0, timeout=timeout_s), to_ask, scheme_name)
        except ServerNotRunning:
            return f"{PREFIX}server not running at {url} - start it with: finsent serve"
        except ClientError as e:
            return PREFIX + str(e)
        fresh = dict(zip(to_ask, answers))
        for text, result in fresh.items():
            if "error" not in result:  # errors are not cached: the server may be fixed, then recalculated
                results_cache.put((url, kind, scheme_name, text), result)
    else:
        fresh = {}
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
            result = fresh.get(cell) or results_cache.get((url, kind, scheme_name, cell))
            if result is None or "error" in result:
                message = (result or {}).get("error", {}).get("message", "no result")
                out_row.append(PREFIX + message)
            else:
                out_row.append(render(result))
        out.append(out_row)
    return out


# A document is labelled sentence by sentence on the server: it may take a while.
DOCUMENT_TIMEOUT_S = 300.0


def document_grid(value, scheme, render) -> list[list] | str:
    """classify_grid for documents: each cell's text summed up from its sentences (/v1/documents)."""
    return classify_grid(value, scheme, render, ask=_documents_summed, kind="document", timeout_s=DOCUMENT_TIMEOUT_S)
