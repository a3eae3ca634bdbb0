"""Freeze as values: replace FinSent formulas by the values they show, so results outlive the server
(a workbook mailed to a colleague, opened on a Mac, or recalculated after the server has stopped).

Two ways in Python (the Office add-in has its own button, in addin/functions.js):
- `freeze_workbook(path, ...)`, behind `finsent excel freeze BOOK.xlsx`: a saved workbook, rewritten with
  openpyxl. Each FinSent formula is computed again (by the running server, or by the model itself) from
  the cells it names, and the values are written in its place (the whole spill of a range formula);
  every other cell, formula, sheet and format is kept, as far as openpyxl keeps them (`dropped_parts`).
- `freeze_selection(range)`, behind the xlwings macro FINSENT_FREEZE_SELECTION: the selection in the
  open workbook, each FinSent formula replaced by what Excel shows (the whole spill area).

Which formulas are FinSent's, and how one is read and computed as Excel computes it, is
excel/formulas.py's (`is_finsent_formula`, `read_call`, `_Computed`); what openpyxl would not write back
is excel/workbook_parts.py's (`dropped_parts`). A formula that cannot be computed stays a formula, with
the reason (`left_summary` groups them).
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from finsent_local.excel.cells import function_cells
from finsent_local.excel.formulas import (ExcelError, FinSentCall, FreezeError, LeftAsFormula, _Computed,
                                          _raise_if_failed, as_text, is_finsent_formula, is_pending, read_call)
from finsent_local.excel.workbook_parts import dropped_parts


# -- a saved workbook ---------------------------------------------------------------------------------------
@dataclass
class FreezeReport:
    formulas: int = 0  # FinSent formulas replaced by values
    cells: int = 0  # cells written (a spilled range writes several)
    sheets: set = field(default_factory=set)
    left: list[tuple[str, str]] = field(default_factory=list)  # ("Sheet!C5", why), formulas kept as they were
    backup: Path | None = None
    dropped: list[str] = field(default_factory=list)  # what openpyxl does not keep (the backup has it)


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
_ENCRYPTED_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")  # an OLE file: what Excel writes for a password-protected workbook


def left_summary(left: list[tuple[str, str]], places_shown: int = 5) -> str:
    """The formulas left as formulas, grouped by reason with their counts and a few cells each:
    "3 FinSent formulas left as formulas: 2 with ... (News!C2, C3); 1 using OFFSET, ... (News!B9)"."""
    groups: dict[str, list[str]] = {}
    for place, reason in left:
        groups.setdefault(reason, []).append(place)

    def places(cells: list[str]) -> str:
        shown, sheet = [], None
        for place in cells[:places_shown]:
            where, _, cell = place.rpartition("!")
            shown.append(cell if where == sheet else place)
            sheet = where
        return ", ".join(shown) + (", ..." if len(cells) > places_shown else "")

    one = len(left) == 1
    head = f"{len(left):,} FinSent formula{'' if one else 's'} left as {'a formula' if one else 'formulas'}"
    if len(groups) == 1:
        (reason, cells), = groups.items()
        return f"{head}, {reason}: {places(cells)}"
    return head + ": " + "; ".join(f"{len(cells):,} {reason} ({places(cells)})" for reason, cells in groups.items())


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


def backup_path(path: Path) -> Path:
    """BOOK.before-freeze.xlsx beside BOOK.xlsx (numbered when taken), so it still opens in Excel."""
    candidate = path.with_name(f"{path.stem}.before-freeze{path.suffix}")
    n = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.before-freeze-{n}{path.suffix}")
        n += 1
    return candidate


NO_SAVED_VALUE = "reading a formula cell that has no saved value (open and save the workbook in Excel first)"


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
            return None, f"naming a sheet that does not exist ({sheet_name!r})"
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
                        return None, NO_SAVED_VALUE
                row.append(value)
            rows.append(row)
        return rows, None

    def value(self, sheet_name: str, reference: str):
        """(value, problem) of one cell, an error value as an ExcelError."""
        rows, problem = self.grid(sheet_name, reference)
        if problem:
            return None, problem
        where, _, cell = reference.rpartition("!")
        sheet_name = where.strip("'").replace("''", "'") if where else sheet_name
        cell = cell.replace("$", "")
        shown = self.formulas_book[sheet_name][cell]
        if _is_formula(shown.value):
            shown = self.values_book[sheet_name][cell]
        return (ExcelError(rows[0][0]) if shown.data_type == "e" else rows[0][0]), None

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
    plans = []  # (sheet, cell, plan): a _Single call or a _Computed formula
    for sheet in formulas_book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if not _is_formula(cell.value):
                    continue
                formula = _formula_text(cell.value)
                if not is_finsent_formula(formula):
                    continue
                try:
                    call = read_call(formula)
                    plan = _Single(call, sheet.title, reading) if call else _Computed(formula, sheet.title, reading)
                except LeftAsFormula as e:
                    report.left.append((f"{sheet.title}!{cell.coordinate}", str(e)))
                    continue
                plans.append((sheet, cell, plan))
    prefetch(_needed_texts(call for _, _, plan in plans for call in plan.needed()))
    for sheet, cell, plan in plans:
        try:
            values = plan.values(source)
        except LeftAsFormula as e:
            report.left.append((f"{sheet.title}!{cell.coordinate}", str(e)))
            continue
        _write_values(sheet, cell, values, report)
    if not report.formulas and not report.left:
        raise FreezeError(f"{path.name} has no FinSent formulas: nothing to freeze")
    _save(formulas_book, path, output, report)
    return report


class _Single:
    """A formula that is one FinSent call on cells or constants (its whole spill written)."""

    def __init__(self, call: FinSentCall, sheet_name: str, reading: _Cells):
        self.call = call
        self.text, problem = reading.argument(sheet_name, call.text)
        self.scheme, scheme_problem = reading.argument(sheet_name, call.scheme)
        if problem or scheme_problem:
            raise LeftAsFormula(problem or scheme_problem)
        if call.webservice and not isinstance(self.text, (list, str)) and self.text is not None:
            self.text = as_text(self.text)  # ENCODEURL(42) sends "42", a date its serial number

    def needed(self) -> list[tuple[str, object, object]]:
        return [(self.call.function, self.text, self.scheme)]

    def values(self, source) -> list[list]:
        values = function_cells(self.call.function, self.text, "7" if self.scheme is None else self.scheme, source)
        values = [[values]] if isinstance(values, str) else values
        _raise_if_failed(values)
        return values


def _needed_texts(calls) -> list[tuple[str, str, str]]:
    """(kind, scheme, text) of every text the calls (function, text, scheme) ask about."""
    from finsent_local.excel.cells import as_grid, normalize_scheme

    needed = {}
    for function, text, scheme in calls:
        kind = "document" if function.startswith("FINSENT_DOC") else "text"
        scheme_name = normalize_scheme(scheme) if scheme is not None else "7"
        for row in as_grid(text)[0]:
            for value in row:
                if isinstance(value, str) and value.strip() and scheme_name:
                    needed[(kind, scheme_name, value)] = None
    return list(needed)


def _write_values(sheet, cell, values: list[list], report: FreezeReport) -> None:
    old_top, old_left, old_bottom, old_right = _spill_area(cell)
    bottom, right = cell.row + len(values) - 1, cell.column + max(len(r) for r in values) - 1
    for r in range(cell.row, bottom + 1):
        for c in range(cell.column, right + 1):
            inside_old = old_top <= r <= old_bottom and old_left <= c <= old_right
            if not inside_old and (r, c) != (cell.row, cell.column) and sheet.cell(r, c).value not in (None, ""):
                report.left.append((f"{sheet.title}!{cell.coordinate}", "whose result would cover cells that hold "
                                    "something else"))
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
        one, more = len(waiting) == 1, ", ..." if len(waiting) > 3 else ""
        return (f"Nothing was frozen: {len(waiting)} FinSent {'cell is' if one else 'cells are'} still waiting for "
                f"{'its result' if one else 'their results'} ({', '.join(waiting[:3])}{more}). Try again when "
                f"{'it has' if one else 'they have'} filled in.")
    if not anchors:
        return "No FinSent formulas in the selection."
    for area in anchors.values():
        area.value = area.options(ndim=2).value  # values over the formula (and its spill)
    return f"Froze {len(anchors)} FinSent formula{'' if len(anchors) == 1 else 's'} into values."


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
