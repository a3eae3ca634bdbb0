"""The Excel functions, for xlwings (Windows desktop Excel):

    =FINSENT(A2, "7")        the label ("strong negative" ... "strong positive"; "3": negative/neutral/positive)
    =FINSENT_SCORE(A2)       the signed score in [-1, 1] (probability-weighted), for averages and charts
    =FINSENT_PROBS(A2, "7")  a header row of label names, then one row of probabilities per text
    =FINSENT_DOC(A2, "7")    a whole document's label (its sentences labelled, then summed up)
    =FINSENT_DOC_SCORE(A2)   the document's mean sentence score in [-1, 1]
    =FINSENT_WHY(A2, "7")    the 3 words that moved the score most, with their weights: "cuts -0.41; guidance -0.12"
                             (=LOCAL.FINSENT.WHY in the add-in: a VBA function's name cannot hold a ".")

Each takes one cell or a whole range; a range comes back as a spilled array of the same shape. Blank
cells give blank results; numbers, dates and error values give a `#FINSENT! ...` message; so do a
stopped server and a bad scheme. Results are kept in memory, so a recalculation gives the same values
without asking the server again.

The functions are asynchronous (xlwings' async_mode="threading"): Excel stays usable while cells show
"#N/A waiting..." and fill in; calls that arrive together are gathered into few requests (batching.py).

FINSENT_FREEZE_SELECTION (a macro, @xw.sub) replaces the FinSent formulas in the selection by their
values, so the results outlive the server (freeze.py).
"""

from __future__ import annotations

import concurrent.futures

import xlwings as xw

from finsent_local.excel.cells import LABELS_BY_SCHEME, PREFIX, function_cells  # noqa: F401
from finsent_local.excel.functions import argument_doc, described

# Threads for xlwings' asynchronous functions. xlwings runs them in one pool of min(32, CPUs + 4)
# threads, and a call that waits for the server holds its thread: calls are only gathered into one
# request as far as they run at once (2,000 single-cell formulas on 8 CPUs: 12 at a time, ~170
# requests). A waiting thread costs little, so the pool is widened to this.
ASYNC_THREADS = 256


def widen_async_pool(udfs_module, threads: int = ASYNC_THREADS) -> bool:
    """Give xlwings' async pool (`udfs_module.com_executor`) `threads` threads, keeping its thread
    initializer (COM set-up). True when it was widened."""
    pool = getattr(udfs_module, "com_executor", None)
    if not isinstance(pool, concurrent.futures.ThreadPoolExecutor) or pool._max_workers >= threads:
        return False
    udfs_module.com_executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=threads, initializer=getattr(pool, "_initializer", None))
    return True


try:  # Windows: xlwings' UDF server (it needs pywin32, so it does not import elsewhere)
    from xlwings import udfs as _xlwings_udfs
except ImportError:
    _xlwings_udfs = None
if _xlwings_udfs is not None:
    widen_async_pool(_xlwings_udfs)


def _excel_function(name: str):
    """xlwings' declaration of one of the functions: asynchronous, a cell or range of texts (ndim=2),
    an optional scheme, help texts from the shared definitions (functions.py)."""
    def declare(func):
        func = described(name)(func)
        func = xw.arg("scheme", doc=argument_doc(name, "scheme"))(func)
        func = xw.arg("text", ndim=2, doc=argument_doc(name, "text"))(func)
        return xw.func(async_mode="threading")(func)
    return declare


def _single_or_grid(value, grid):
    """A single cell gets a single value back, a range the grid (spilled). (In Excel, xlwings passes
    even a single cell as a 1x1 grid, which Excel shows as that one value.)"""
    if isinstance(grid, str) or isinstance(value, list):
        return grid
    return grid[0][0]


@_excel_function("FINSENT")
def FINSENT(text, scheme="7"):
    return _single_or_grid(text, function_cells("FINSENT", text, scheme))


@_excel_function("FINSENT_SCORE")
def FINSENT_SCORE(text, scheme="7"):
    return _single_or_grid(text, function_cells("FINSENT_SCORE", text, scheme))


@_excel_function("FINSENT_PROBS")
def FINSENT_PROBS(text, scheme="7"):
    return function_cells("FINSENT_PROBS", text, scheme)


@_excel_function("FINSENT_DOC")
def FINSENT_DOC(text, scheme="7"):
    return _single_or_grid(text, function_cells("FINSENT_DOC", text, scheme))


@_excel_function("FINSENT_DOC_SCORE")
def FINSENT_DOC_SCORE(text, scheme="7"):
    return _single_or_grid(text, function_cells("FINSENT_DOC_SCORE", text, scheme))


# FINSENT.WHY in the add-in. xlwings declares each function to Excel as a VBA Function named after the
# Python function, and neither VBA nor Python allows "." in a name (functions.ExcelFunction.xlwings_name).
@_excel_function("FINSENT_WHY")
def FINSENT_WHY(text, scheme="7"):
    return _single_or_grid(text, function_cells("FINSENT.WHY", text, scheme))


@xw.sub
def FINSENT_FREEZE_SELECTION():
    """Replace the FinSent formulas in the selection by their current values (other formulas stay)."""
    from finsent_local.excel.freeze import freeze_selection

    book = xw.Book.caller()
    message = freeze_selection(book.selection)
    book.app.alert(message, title="FinSent Local")


__all__ = ["FINSENT", "FINSENT_SCORE", "FINSENT_PROBS", "FINSENT_DOC", "FINSENT_DOC_SCORE", "FINSENT_WHY",
           "FINSENT_FREEZE_SELECTION", "PREFIX"]
