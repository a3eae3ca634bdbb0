"""Freeze as values: replace FinSent formulas by the values they show, so results outlive the server
(a workbook mailed to a colleague, opened on a Mac, or recalculated after the server has stopped).

Two ways in Python (the Office add-in has its own button, in addin/functions.js):
- `freeze_workbook(path, ...)`, behind `finsent excel freeze BOOK.xlsx`: a saved workbook, rewritten with
  openpyxl. Each FinSent formula is computed again (by the running server, or by the model itself) from
  the cells it names, and the values are written in its place (the whole spill of a range formula);
  every other cell, formula, sheet and format is kept, as far as openpyxl keeps them (`dropped_parts`).
- `freeze_selection(range)`, behind the xlwings macro FINSENT_FREEZE_SELECTION: the selection in the
  open workbook, each FinSent formula replaced by what Excel shows (the whole spill area).

Formulas this recognises (`is_finsent_formula`): =FINSENT, =FINSENT_SCORE, =FINSENT_PROBS, =FINSENT_DOC,
=FINSENT_DOC_SCORE, with the add-in's LOCAL. namespace or the prefixes files store them with, and the
documented WEBSERVICE(".../v1/label?...&text="&ENCODEURL(A2)) form (alone or inside IF(A2="","",...)).
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from finsent_local.excel.cells import PREFIX, function_cells

# The FinSent functions as typed, and as workbooks store them: LOCAL. (the add-in's namespace),
# _xludf. (a function Excel did not know when it saved), _xldudf_LOCAL_ (an add-in function in a file).
_PREFIXES = r"(?:LOCAL\.|_xludf\.|_xldudf_LOCAL_)?"
_NAME = r"(FINSENT(?:_SCORE|_PROBS|_DOC_SCORE|_DOC)?)"
FUNCTION_CALL = re.compile(r"(?<![\w.])" + _PREFIXES + _NAME + r"\s*\(", re.IGNORECASE)
WEBSERVICE_LABEL = re.compile(r"(?<![\w.])(?:_xlfn\.)?WEBSERVICE\s*\(\s*\"[^\"]*/v1/label\?", re.IGNORECASE)

# Values that mean "not answered yet": xlwings' async placeholder, the add-in's and Excel's own.
PENDING_VALUES = ("#N/A waiting", "#GETTING_DATA", "#BUSY!")
# Messages of a request that failed this time (the cell's answer is not known), as opposed to an answer
# about the text itself (not text, empty, too long...): freezing them would make a passing failure permanent.
TRANSIENT_MESSAGES = ("did not answer in time", "server error (HTTP", "unexpected answer from", "server not running",
                      "server not reachable", "internal error", "no result", "no answer in time", "retry shortly",
                      "try again shortly", "could not be loaded")


def is_transient(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX) and any(m in value for m in TRANSIENT_MESSAGES)


def is_finsent_formula(formula) -> bool:
    """Whether a cell's formula calls a FinSent function (or the label WEBSERVICE) anywhere in it."""
    if not isinstance(formula, str) or not formula.startswith("="):
        return False
    return bool(FUNCTION_CALL.search(formula) or WEBSERVICE_LABEL.search(formula))


def is_pending(value) -> bool:
    return isinstance(value, str) and value.strip().startswith(PENDING_VALUES)


# -- one formula, read: which function, which cells, which scheme -----------------------------------------
_REF = r"(?:(?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d+)?"
_STRING = r'"(?:[^"]|"")*"'
_ARG = rf"\s*({_REF}|{_STRING}|-?\d+(?:\.\d+)?)\s*"
CALL_FORMULA = re.compile(rf"^=\s*{_PREFIXES}{_NAME}\(({_ARG})(?:,({_ARG}))?\)\s*$", re.IGNORECASE)
WEBSERVICE_FORMULA = re.compile(
    r"^=\s*(?:IF\(\s*(?P<blank>" + _REF + r')\s*=\s*""\s*,\s*""\s*,\s*)?(?:_xlfn\.)?WEBSERVICE\(\s*"(?P<url>[^"]*/v1/label\?'
    r'[^"]*)"\s*&\s*(?:_xlfn\.)?ENCODEURL\(\s*(?P<ref>' + _REF + r")\s*\)\s*\)\s*(?(blank)\))\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class FinSentCall:
    """A formula this module can compute: =NAME(text, scheme), each argument a reference or a constant."""

    function: str  # FINSENT, FINSENT_SCORE, ... (the WEBSERVICE form: FINSENT)
    text: str  # a reference (A2, A2:A9, 'Sheet 2'!B3) or a constant ("...", 42)
    scheme: str | None  # likewise, or None when omitted


def read_call(formula: str) -> FinSentCall | None:
    """The call a FinSent formula makes, or None when it is more than one call of simple arguments
    (=IFERROR(FINSENT(A2),""), =FINSENT(A2&B2)...): those are not computed here."""
    found = CALL_FORMULA.match(formula)
    if found:
        scheme = found.group(4)
        return FinSentCall(found.group(1).upper(), found.group(3).strip(), scheme.strip() if scheme else None)
    found = WEBSERVICE_FORMULA.match(formula)
    if found and (found.group("blank") is None or _same_ref(found.group("blank"), found.group("ref"))):
        query = parse_qs(urlsplit(found.group("url")).query)
        return FinSentCall("FINSENT", found.group("ref"), f'"{query.get("scheme", ["7"])[0]}"')
    return None


def _same_ref(a: str, b: str) -> bool:
    return a.replace("$", "").upper() == b.replace("$", "").upper()


# -- a saved workbook ---------------------------------------------------------------------------------------
class FreezeError(Exception):
    """The workbook cannot be frozen (one line for the user); nothing was written."""


@dataclass
class FreezeReport:
    formulas: int = 0  # FinSent formulas replaced by values
    cells: int = 0  # cells written (a spilled range writes several)
    sheets: set = field(default_factory=set)
    left: list[str] = field(default_factory=list)  # "Sheet!C5: why", for formulas kept as they were
    backup: Path | None = None
    dropped: list[str] = field(default_factory=list)  # what openpyxl does not keep (the backup has it)


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
_ENCRYPTED_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")  # an OLE file: what Excel writes for a password-protected workbook


def _open_workbooks(path: Path):
    """(formulas, cached values) of a workbook, or a FreezeError saying why it cannot be read."""
    from openpyxl import load_workbook

    if not path.is_file():
        raise FreezeError(f"{path} not found")
    if path.suffix.lower() not in WORKBOOK_SUFFIXES:
        raise FreezeError(f"{path.name}: finsent excel freeze reads .xlsx and .xlsm workbooks (save it as .xlsx in "
                          "Excel first)")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _ENCRYPTED_MAGIC:
        raise FreezeError(f"{path.name} is password-protected: open it in Excel, remove the password (File > Info > "
                          "Protect Workbook > Encrypt with Password), save, and run this again")
    try:
        keep_vba = path.suffix.lower() == ".xlsm"
        return load_workbook(path, keep_vba=keep_vba), load_workbook(path, data_only=True, keep_vba=keep_vba)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise FreezeError(f"{path.name} is not a readable Excel workbook ({type(e).__name__}: {e})") from None


# What openpyxl loses inside parts it does write back: found in the file, named in the report.
_DROPPED_CONTENT = (
    (re.compile(r"xl/drawings/drawing\d+\.xml"), (b"<xdr:sp>", b"<xdr:sp "), "shapes and text boxes"),
    (re.compile(r"xl/worksheets/sheet\d+\.xml"), (b"sparklineGroups",), "sparklines"),
    (re.compile(r"xl/worksheets/sheet\d+\.xml"), (b"<extLst",), "newer formatting and validation kept in extensions"),
)

# Parts of a workbook package, by what they hold (openpyxl renames some: Excel's xl/comments1.xml is its
# xl/comments/comment1.xml). A kind the original has and the written file has not is named in the report.
_PART_KINDS = (
    (r"xl/connections\.xml|xl/queryTables/", "data connections and queries (Power Query)"),
    (r"customXml/", "custom XML parts"),
    (r"xl/model/", "data model (Power Pivot)"),
    (r"xl/activeX/", "ActiveX controls"),
    (r"xl/embeddings/", "embedded objects"),
    (r"xl/vbaProject\.bin|xl/vbaProjectSignature", "VBA macros"),
    (r"xl/pivotCache/", "pivot caches"),
    (r"xl/pivotTables/", "pivot tables"),
    (r"xl/slicers/|xl/slicerCaches/", "slicers"),
    (r"xl/timelines/|xl/timelineCaches/", "timelines"),
    (r"xl/ctrlProps/", "form controls"),
    (r"xl/richData/", "linked data types and pictures in cells"),
    (r"xl/threadedComments/|xl/persons/", "threaded comments (their first lines stay as notes)"),
    (r"xl/metadata\.xml", "dynamic-array formulas (other than FinSent's: they become fixed Ctrl+Shift+Enter arrays)"),
    (r"xl/externalLinks/", "links to other workbooks"),
    (r"xl/webextensions/", "Office add-in task panes and settings"),
    (r"xl/tables/", "tables"),
    (r"xl/charts/chart\d*\.xml", "charts"),
    (r"xl/charts/(?:style|colors)\d*\.xml", "chart styles and colour sets"),
    (r"xl/chartsheets/", "chart sheets"),
    (r"xl/dialogsheets/", "dialog sheets"),
    (r"xl/macrosheets/", "Excel 4 macro sheets"),
    (r"xl/drawings/drawing\d*\.xml", "drawings"),
    (r"xl/drawings/[^/]*\.vml", "legacy drawings (note boxes, controls)"),
    (r"xl/media/", "pictures"),
    (r"xl/comments\d*\.xml|xl/comments/", "notes"),
    (r"xl/printerSettings/", "printer settings"),
    (r"customUI/", "ribbon customisations"),
    (r"_xmlsignatures/", "digital signatures"),
    (r"docProps/thumbnail\.", "thumbnail preview"),
    (r"xl/worksheets/", "worksheets"),
)
_PART_KIND_PATTERNS = tuple((re.compile(pattern, re.IGNORECASE), what) for pattern, what in _PART_KINDS)
# Made again from the rest by whoever writes the package (relationships, content types) or by Excel
# when it opens the file (the calculation chain): their absence loses nothing.
_REBUILT_PARTS = re.compile(r"\[Content_Types\]\.xml$|(?:.*/)?_rels/|xl/calcChain\.xml$", re.IGNORECASE)


def _part_kind(name: str) -> str | None:
    return next((what for pattern, what in _PART_KIND_PATTERNS if pattern.match(name)), None)


def _parts(book_file) -> list[str]:
    with zipfile.ZipFile(book_file) as z:
        return [name for name in z.namelist() if not name.endswith("/") and not _REBUILT_PARTS.match(name)]


def dropped_parts(path: Path, written: Path | None = None) -> list[str]:
    """What the workbook at `path` holds that openpyxl does not write back, in words: every part of its
    package with no counterpart in `written` (the file openpyxl wrote from it; default: the workbook
    loaded and saved to memory), grouped by what it holds (data connections, custom XML, ActiveX...;
    "other parts: ..." for the rest), and what it loses inside the parts it keeps (shapes, sparklines...)."""
    if written is None:
        import io

        from openpyxl import load_workbook

        written = io.BytesIO()
        book = load_workbook(path, keep_vba=path.suffix.lower() == ".xlsm")
        book.save(written)
        if book.vba_archive is not None:  # openpyxl's copy of the macro parts, a zip it leaves open
            book.vba_archive.close()
    original, kept = _parts(path), _parts(written)
    kept_kinds = {_part_kind(name) for name in kept}
    kept_shapes = {re.sub(r"\d+", "#", name.lower()) for name in kept}
    found: list[str] = []
    others: list[str] = []
    for name in original:
        kind = _part_kind(name)
        if kind is None:
            if re.sub(r"\d+", "#", name.lower()) not in kept_shapes:
                others.append(name)
        elif kind not in kept_kinds and kind not in found:
            found.append(kind)
    with zipfile.ZipFile(path) as z:
        for name in original:
            for pattern, markers, what in _DROPPED_CONTENT:
                if what not in found and pattern.match(name) and any(m in z.read(name) for m in markers):
                    found.append(what)
    if others:
        found.append("other parts: " + ", ".join(others[:5]) + (f", ... ({len(others)} in all)" if len(others) > 5 else ""))
    return found


def backup_path(path: Path) -> Path:
    """BOOK.before-freeze.xlsx beside BOOK.xlsx (numbered when taken), so it still opens in Excel."""
    candidate = path.with_name(f"{path.stem}.before-freeze{path.suffix}")
    n = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.before-freeze-{n}{path.suffix}")
        n += 1
    return candidate


class _Cells:
    """Reads what a reference holds, as Excel passes it to a function: a cell's value, or a formula's
    saved value (None when the workbook was never calculated)."""

    def __init__(self, formulas_book, values_book):
        self.formulas_book = formulas_book
        self.values_book = values_book

    def grid(self, sheet_name: str, reference: str) -> tuple[list[list] | None, str | None]:
        """(values as rows, problem) of `reference` as seen from `sheet_name`."""
        from openpyxl.utils.cell import range_boundaries

        where, _, cells = reference.rpartition("!")
        sheet_name = where.strip("'").replace("''", "'") if where else sheet_name
        if sheet_name not in self.formulas_book.sheetnames:
            return None, f"no sheet named {sheet_name!r}"
        min_col, min_row, max_col, max_row = range_boundaries(cells.replace("$", ""))
        formulas, values = self.formulas_book[sheet_name], self.values_book[sheet_name]
        rows = []
        for r in range(min_row, max_row + 1):
            row = []
            for c in range(min_col, max_col + 1):
                value = formulas.cell(r, c).value
                if _is_formula(value):
                    value = values.cell(r, c).value
                    if value is None:
                        return None, f"{cells} holds formulas with no saved value (open and save the workbook in Excel first)"
                row.append(value)
            rows.append(row)
        return rows, None

    def argument(self, sheet_name: str, argument: str | None):
        """(value, problem): a reference's grid (one cell: its value), a string or a number constant."""
        if argument is None:
            return None, None
        if argument.startswith('"'):
            return argument[1:-1].replace('""', '"'), None
        if re.fullmatch(r"-?\d+(?:\.\d+)?", argument):
            return float(argument), None
        rows, problem = self.grid(sheet_name, argument)
        if problem:
            return None, problem
        return (rows[0][0] if ":" not in argument else rows), None


def _is_formula(value) -> bool:
    from openpyxl.worksheet.formula import ArrayFormula

    return isinstance(value, ArrayFormula) or (isinstance(value, str) and value.startswith("="))


def _formula_text(value) -> str:
    from openpyxl.worksheet.formula import ArrayFormula

    text = value.text if isinstance(value, ArrayFormula) else value
    return text if text.startswith("=") else "=" + text


def _spill_area(cell) -> tuple[int, int, int, int]:
    """(first row, first column, last row, last column) the cell's formula fills: an array formula's
    ref, else the cell itself."""
    from openpyxl.utils.cell import range_boundaries
    from openpyxl.worksheet.formula import ArrayFormula

    if isinstance(cell.value, ArrayFormula) and cell.value.ref:
        min_col, min_row, max_col, max_row = range_boundaries(cell.value.ref.replace("$", ""))
        return min_row, min_col, max_row, max_col
    return cell.row, cell.column, cell.row, cell.column


def freeze_workbook(path: Path, output: Path | None, source, prefetch: Callable[[list[tuple[str, str, str]]], None]
                    = lambda needed: None) -> FreezeReport:
    """Replace every FinSent formula of the workbook at `path` by its values, computed by `source`
    (cells.ServerSource or cells.ModelSource). Written to `output`, or over `path` with the original
    kept as backup_path(path). `prefetch(needed)` gets every (kind, scheme, text) first, to ask them in
    few requests. Raises FreezeError, writing nothing, when the workbook cannot be read."""
    path = Path(path)
    formulas_book, values_book = _open_workbooks(path)
    reading = _Cells(formulas_book, values_book)
    report = FreezeReport()
    plans = []  # (sheet, cell, call, text value, scheme value)
    for sheet in formulas_book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if not _is_formula(cell.value):
                    continue
                formula = _formula_text(cell.value)
                if not is_finsent_formula(formula):
                    continue
                place = f"{sheet.title}!{cell.coordinate}"
                call = read_call(formula)
                if call is None:
                    report.left.append(f"{place}: {formula} is more than one FinSent call on cells or constants")
                    continue
                text, problem = reading.argument(sheet.title, call.text)
                scheme, scheme_problem = reading.argument(sheet.title, call.scheme)
                if problem or scheme_problem:
                    report.left.append(f"{place}: {problem or scheme_problem}")
                    continue
                plans.append((sheet, cell, call, text, scheme))
    prefetch(_needed_texts(plans))
    for sheet, cell, call, text, scheme in plans:
        _write_values(sheet, cell, call, text, scheme, source, report)
    if not report.formulas and not report.left:
        raise FreezeError(f"{path.name} has no FinSent formulas: nothing to freeze")
    _save(formulas_book, path, output, report)
    return report


def _needed_texts(plans) -> list[tuple[str, str, str]]:
    from finsent_local.excel.cells import as_grid, normalize_scheme

    needed = {}
    for _, _, call, text, scheme in plans:
        kind = "document" if call.function.startswith("FINSENT_DOC") else "text"
        scheme_name = normalize_scheme(scheme) if scheme is not None else "7"
        for row in as_grid(text)[0]:
            for value in row:
                if isinstance(value, str) and value.strip() and scheme_name:
                    needed[(kind, scheme_name, value)] = None
    return list(needed)


def _write_values(sheet, cell, call: FinSentCall, text, scheme, source, report: FreezeReport) -> None:
    place = f"{sheet.title}!{cell.coordinate}"
    values = function_cells(call.function, text, "7" if scheme is None else scheme, source)
    if isinstance(values, str):
        values = [[values]]
    if values and values[0] and isinstance(values[0][0], str) and values[0][0].startswith(PREFIX + "server not"):
        raise FreezeError(values[0][0][len(PREFIX):])
    failed = next((v for row in values for v in row if is_transient(v)), None)
    if failed is not None:
        report.left.append(f"{place}: {failed[len(PREFIX):]} (run freeze again)")
        return
    old_top, old_left, old_bottom, old_right = _spill_area(cell)
    bottom, right = cell.row + len(values) - 1, cell.column + max(len(r) for r in values) - 1
    for r in range(cell.row, bottom + 1):
        for c in range(cell.column, right + 1):
            inside_old = old_top <= r <= old_bottom and old_left <= c <= old_right
            if not inside_old and (r, c) != (cell.row, cell.column) and sheet.cell(r, c).value not in (None, ""):
                report.left.append(f"{place}: its {len(values)} x {right - cell.column + 1} result would cover "
                                   f"{sheet.cell(r, c).coordinate}, which holds something else")
                return
    for r in range(old_top, old_bottom + 1):  # the old spill's cached values, where the new result is smaller
        for c in range(old_left, old_right + 1):
            sheet.cell(r, c).value = None
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            sheet.cell(cell.row + i, cell.column + j).value = None if value == "" else value
            report.cells += 1
    report.formulas += 1
    report.sheets.add(sheet.title)


def _save(book, path: Path, output: Path | None, report: FreezeReport) -> None:
    target = Path(output) if output is not None else path
    partial = target.with_name(f".{target.name}.finsent-partial")
    try:
        book.save(partial)
        report.dropped = dropped_parts(path, partial)
        if output is None:
            report.backup = backup_path(path)
            shutil.copy2(path, report.backup)
        os.replace(partial, target)
    except OSError as e:
        raise FreezeError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        partial.unlink(missing_ok=True)


# -- the open workbook (the xlwings macro) --------------------------------------------------------------------
def freeze_selection(selection) -> str:
    """Replace the FinSent formulas in an xlwings Range (the selection) by the values Excel shows; a
    formula that spills, or an array formula (Ctrl+Shift+Enter), is replaced with its whole area. Every
    check comes before any write: while a FinSent cell is still waiting for its result, nothing is
    changed. Returns the message for the user."""
    anchors, waiting = {}, []
    for cell in formula_cells(selection):
        formula = cell.formula2 if hasattr(cell, "formula2") else cell.formula
        if not is_finsent_formula(formula):
            continue
        area = spill_area_of(cell)
        if any(is_pending(v) for row in _as_rows(area.options(ndim=2, err_to_str=True).value) for v in row):
            waiting.append(cell.address)
        anchors.setdefault(area.address, area)
    if waiting:
        return (f"Nothing was frozen: {len(waiting)} FinSent cell(s) are still waiting for their results "
                f"({', '.join(waiting[:3])}{', ...' if len(waiting) > 3 else ''}). Try again when they have filled in.")
    if not anchors:
        return "No FinSent formulas in the selection."
    for area in anchors.values():
        area.value = area.options(ndim=2).value  # values over the formula (and its spill)
    return f"Froze {len(anchors)} FinSent formula(s) into values."


XL_CELL_TYPE_FORMULAS = -4123  # Excel's xlCellTypeFormulas


def formula_cells(selection) -> list:
    """The cells of the selection that hold a formula, in every area of it (Ctrl+click selections),
    asked of Excel in one call (SpecialCells), so a selected whole column is not a million cells."""
    try:
        found = selection.api.SpecialCells(XL_CELL_TYPE_FORMULAS)
    except Exception:  # Excel raises when there is none
        return []
    sheet = selection.sheet
    return [sheet.range(cell.Address) for area in found.Areas for cell in area.Cells]


def spill_area_of(cell):
    """The range a cell's formula fills: its spill area (Excel 365's dynamic arrays), its array
    formula's range (Ctrl+Shift+Enter), else the cell."""
    api = cell.api
    if getattr(api, "HasSpill", False):
        return cell.sheet.range(api.SpillParent.SpillingToRange.Address)
    if getattr(api, "HasArray", False):
        return cell.sheet.range(api.CurrentArray.Address)
    return cell


def _as_rows(value) -> list[list]:
    return value if isinstance(value, list) else [[value]]
