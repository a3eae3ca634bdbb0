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
from finsent_local.labels import default_schemes

PREFIX = "#FINSENT! "
EXCEL_ERRORS = {"#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NUM!", "#NAME?", "#NULL!", "#SPILL!", "#CALC!", "#GETTING_DATA"}
MAX_TEXT_CHARS = 32_767
CACHE_ENTRIES = 100_000
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
    """Results by (server, scheme, text), so a recalculation gives the same answer with no request."""

    def __init__(self, size: int = CACHE_ENTRIES):
        self._items: OrderedDict = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


results_cache = _ResultCache()


def normalize_scheme(scheme) -> str | None:
    if isinstance(scheme, float) and scheme.is_integer():
        scheme = int(scheme)
    value = str(scheme).strip() if scheme is not None else "7"
    return value if value in ("3", "7") else None


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


def classify_grid(value, scheme, render) -> list[list] | str:
    """Results for every cell of `value` (one request for all uncached texts), shaped like the input.

    render(result) turns a server result into the cell's value(s). Blank cells stay blank. Returns a
    single message string when nothing can be done (bad scheme, server down).
    """
    scheme_name = normalize_scheme(scheme)
    if scheme_name is None:
        return PREFIX + 'scheme must be "3" or "7"'
    grid, _ = as_grid(value)
    url, key = settings()
    to_ask: list[str] = []
    for row in grid:
        for cell in row:
            if isinstance(cell, str) and cell.strip() and _cell_problem(cell) is None:
                if results_cache.get((url, scheme_name, cell)) is None and cell not in to_ask:
                    to_ask.append(cell)
    if to_ask:
        try:
            answers = FinSentClient(url, key, connect_timeout=2.0, timeout=60.0).classify(to_ask, scheme_name)
        except ServerNotRunning:
            return f"{PREFIX}server not running at {url} - start it with: finsent serve"
        except ClientError as e:
            return PREFIX + str(e)
        fresh = dict(zip(to_ask, answers))
        for text, result in fresh.items():
            if "error" not in result:  # errors are not cached: the server may be fixed, then recalculated
                results_cache.put((url, scheme_name, text), result)
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
            result = fresh.get(cell) or results_cache.get((url, scheme_name, cell))
            if result is None or "error" in result:
                message = (result or {}).get("error", {}).get("message", "no result")
                out_row.append(PREFIX + message)
            else:
                out_row.append(render(result))
        out.append(out_row)
    return out
