"""XLSX: one sheet of a workbook, read and written with openpyxl's streaming modes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import InputTable, NotText, RowResult, TableError, _chunked, _column_list, _no_column, _take, label_count
from .xlsx_copy import WorkbookCopy, unkept_parts


FORMULA_WITHOUT_VALUE = NotText("formula without a saved value (open the workbook in Excel and save it, so "
                                "the formula's result is stored)")


class XlsxTable(InputTable):
    """One sheet of a workbook (--sheet, default the first), its first row the header. --column is a
    header (exact, else the one header equal to it ignoring case) or a column letter (B); which column
    was taken is said when it was not an exact header. Cells are read as values (a formula's last saved
    value). The sheet's recorded size (<dimension>) is not trusted: files written by other tools
    often have it wrong or missing, and openpyxl would stop reading at it. Rows shorter than the widest
    are padded, as in CSV. The output workbook is the input's, every sheet with its cells, formulas and
    formats (xlsx_copy: streamed, so memory stays flat), the results in new columns after the widest
    row of that sheet; what the copy cannot keep (charts, comments...) is said when the input has it."""

    format_name = "Excel"

    def __init__(self, path: Path, column: str | None, sheet: str | None):
        super().__init__(path, column)
        import openpyxl

        self._openpyxl = openpyxl
        try:
            book = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises zipfile, KeyError and its own errors for broken files
            raise TableError(f"{self.path.name} is not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
        try:
            names = book.sheetnames
            if sheet is not None and sheet not in names:
                raise TableError(f"no sheet {sheet!r} in {self.path.name}; its sheets: {_column_list(names)}")
            self.sheet = sheet if sheet is not None else names[0]
            rows = self._sheet_rows(book)
            self.header = ["" if v is None else str(v) for v in next(rows, ())]
            self.data_rows = 0
            self.width = len(self.header)
            for row in rows:  # one pass over the values: the row count and the widest row
                self.data_rows += 1
                self.width = max(self.width, len(row))
        finally:
            book.close()
        self.header += [""] * (self.width - len(self.header))
        self.index = self._column_index(column)
        lost = unkept_parts(self.path)
        if lost:
            self.notes.append(f"note: the output workbook keeps every sheet's cells, formulas and formats, but not "
                              f"the input's {', '.join(lost)}")

    def _sheet_rows(self, book, **bounds) -> Iterator[tuple]:
        ws = book[self.sheet]
        ws.reset_dimensions()
        return ws.iter_rows(values_only=True, **bounds)

    def _column_index(self, column: str | None) -> int:
        from openpyxl.utils import column_index_from_string, get_column_letter

        where = f"sheet {self.sheet!r} of {self.path.name}"
        if column and column in self.header:
            return self.header.index(column)
        folded = [i for i, name in enumerate(self.header) if column and name.casefold() == column.casefold()]
        if len(folded) == 1:
            self.notes.append(f"note: --column {column!r} is the column headed {self.header[folded[0]]!r}")
            return folded[0]
        try:
            index = column_index_from_string((column or "").upper()) - 1
        except ValueError:
            index = None
        if index is None or index >= self.width:
            raise _no_column(column, where, [h for h in self.header if h], " (or a letter, e.g. B)")
        heading = f"headed {self.header[index]!r}" if self.header[index] else "with no header"
        self.notes.append(f"note: --column {column} is column {get_column_letter(index + 1)} of {where}, {heading}")
        return index

    def column_names(self) -> list[str]:
        return self.header

    def _rows(self, values: bool = True, **bounds) -> Iterator[tuple]:
        book = self._openpyxl.load_workbook(self.path, read_only=True, data_only=values)
        try:
            yield from self._sheet_rows(book, min_row=2, **bounds)
        finally:
            book.close()

    def count_rows(self) -> int:
        return self.data_rows

    def _column_values(self) -> Iterator[object]:
        """The column's cells; an empty value whose cell holds a formula is a formula never computed
        (a workbook written by a program, not saved by Excel): said as such, not as an empty text."""
        column = {"min_col": self.index + 1, "max_col": self.index + 1}
        for (value,), (formula,) in zip(self._rows(True, **column), self._rows(False, **column)):
            if value is None and isinstance(formula, str) and formula.startswith("="):
                yield FORMULA_WITHOUT_VALUE
            else:
                yield value

    def texts(self, chunk_rows: int) -> Iterator[list]:
        yield from _chunked(self._column_values(), chunk_rows)

    def write_scored(self, out_path: Path, results: Iterator[RowResult], added_columns: list[str]) -> None:
        n_labels = label_count(added_columns)

        def added(row: int) -> list:
            return list(added_columns) if row == 1 else _take(results, 1)[0].values(n_labels)

        book = WorkbookCopy(self.path)
        try:
            for name in book.sheet_names():
                if name == self.sheet:
                    book.copy_sheet(name, added, self.width, last_row=1 + self.data_rows)
                else:
                    book.copy_sheet(name)
            book.save(out_path)
        finally:
            book.close()
