"""The Excel functions, for xlwings (Windows desktop Excel):

    =FINSENT(A2, "7")        the label ("strong negative" ... "strong positive"; "3": negative/neutral/positive)
    =FINSENT_SCORE(A2)       the signed score in [-1, 1] (probability-weighted), for averages and charts
    =FINSENT_PROBS(A2, "7")  a header row of label names, then one row of probabilities per text
    =FINSENT_DOC(A2, "7")    a whole document's label (its sentences labelled, then summed up)
    =FINSENT_DOC_SCORE(A2)   the document's mean sentence score in [-1, 1]

Each takes one cell or a whole range; a range goes to the server as one request and comes back as a
spilled array of the same shape. Blank cells give blank results; numbers, dates and error values give a
`#FINSENT! ...` message; so do a stopped server and a bad scheme. Results are kept in memory, so a
recalculation gives the same values without asking the server again.
"""

from __future__ import annotations

import xlwings as xw

from finsent_local.excel.cells import LABELS_BY_SCHEME, PREFIX, as_grid, classify_grid, document_grid, normalize_scheme
from finsent_local.excel.functions import argument_doc, described


def _excel_function(name: str):
    """xlwings' declaration of one of the functions: a cell or range of texts (ndim=2), an optional
    scheme, help texts from the shared definitions (functions.py)."""
    def declare(func):
        func = described(name)(func)
        func = xw.arg("scheme", doc=argument_doc(name, "scheme"))(func)
        func = xw.arg("text", ndim=2, doc=argument_doc(name, "text"))(func)
        return xw.func(func)
    return declare


def _single_or_grid(value, grid):
    """A single cell gets a single value back, a range the grid (spilled). (In Excel, xlwings passes
    even a single cell as a 1x1 grid, which Excel shows as that one value.)"""
    if isinstance(grid, str) or isinstance(value, list):
        return grid
    return grid[0][0]


@_excel_function("FINSENT")
def FINSENT(text, scheme="7"):
    return _single_or_grid(text, classify_grid(text, scheme, lambda r: r["label"]))


@_excel_function("FINSENT_SCORE")
def FINSENT_SCORE(text, scheme="7"):
    return _single_or_grid(text, classify_grid(text, scheme, lambda r: r["score"]))


@_excel_function("FINSENT_PROBS")
def FINSENT_PROBS(text, scheme="7"):
    scheme_name = normalize_scheme(scheme)
    grid_in, _ = as_grid(text)
    cells = [cell for row in grid_in for cell in row]  # row by row
    grid = classify_grid([[c] for c in cells], scheme, lambda r: r["probs"])
    if isinstance(grid, str):
        return grid
    labels = None
    for (cell_value,) in grid:
        if isinstance(cell_value, dict):
            labels = list(cell_value)
            break
    if labels is None:  # nothing classified (all blank or messages): the scheme's own labels
        labels = list(LABELS_BY_SCHEME[scheme_name])
    out = [labels]
    for (cell_value,) in grid:
        if isinstance(cell_value, dict):
            out.append([cell_value[label] for label in labels])
        else:  # blank or a message: first column, the rest blank
            out.append([cell_value] + [""] * (len(labels) - 1))
    return out


@_excel_function("FINSENT_DOC")
def FINSENT_DOC(text, scheme="7"):
    return _single_or_grid(text, document_grid(text, scheme, lambda r: r["label"]))


@_excel_function("FINSENT_DOC_SCORE")
def FINSENT_DOC_SCORE(text, scheme="7"):
    return _single_or_grid(text, document_grid(text, scheme, lambda r: r["score"]))


__all__ = ["FINSENT", "FINSENT_SCORE", "FINSENT_PROBS", "FINSENT_DOC", "FINSENT_DOC_SCORE", "PREFIX"]
