"""A workbook copied sheet by sheet in openpyxl's streaming modes (memory stays flat, whatever the size),
with columns added to one sheet: what `finsent classify` writes for an .xlsx input.

Kept: every worksheet, in order, and in each its cells as they are stored: values, dates, formulas
as formulas (also those never computed, which have no saved value), and each cell's style (number
format, font, fill, border, alignment, protection); column widths and hidden columns, row heights,
frozen panes and the sheet view, merged cells, conditional formatting, data validation, the
autofilter, print setup, sheet protection, and the workbook's defined names. Not kept (openpyxl's
streaming modes cannot carry them): see LOST_PARTS, named in a note by unkept_parts() when the input
has any. Formulas are written without their saved results, as openpyxl writes every formula: Excel
and LibreOffice compute them when the workbook is opened.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from copy import copy
from pathlib import Path

# Parts of an .xlsx (by where they lie in the zip) that the copy does not keep, as the user knows them.
LOST_PARTS = (
    (("xl/charts/", "xl/drawings/", "xl/media/"), "charts, images and shapes"),
    (("xl/chartsheets/",), "chart sheets"),
    (("xl/comments", "xl/threadedComments/", "xl/persons/"), "comments (notes)"),
    (("xl/tables/",), "tables' names and styles (Format as Table; their cells are kept)"),
    (("xl/pivotTables/", "xl/pivotCache/"), "pivot tables"),
    (("xl/slicers/", "xl/slicerCaches/", "xl/timelines/", "xl/timelineCaches/"), "slicers and timelines"),
    (("xl/externalLinks/",), "links to other workbooks"),
    (("xl/vbaProject.bin",), "macros"),
)
HYPERLINK_RELATION = b"/relationships/hyperlink\""


def unkept_parts(path: Path) -> list[str]:
    """What the input workbook has that the copy loses, as the user knows it (empty: nothing)."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        lost = [words for prefixes, words in LOST_PARTS if any(n.startswith(prefixes) for n in names)]
        rels = [n for n in names if n.startswith("xl/worksheets/_rels/") and n.endswith(".rels")]
        if any(HYPERLINK_RELATION in z.read(n) for n in rels):
            lost.append("links to web pages and files (hyperlinks)")
    return lost


# Sheet settings read before the cells (written before the first row) and after them (written at the end).
TOP_SETTINGS = ("sheet_properties", "views", "sheet_format")
TAIL_SETTINGS = ("print_options", "page_margins", "page_setup", "HeaderFooter", "auto_filter", "data_validations",
                 "row_breaks", "col_breaks", "scenarios", "protection")


class WorkbookCopy:
    """Copies `source` (an .xlsx) into a new streaming workbook; copy_sheet() once per sheet, in order,
    then save()."""

    def __init__(self, source: Path):
        import openpyxl

        # formulas as formulas (data_only=False); keep_links=False: external links are not copied
        self.source = openpyxl.load_workbook(source, read_only=True, data_only=False, keep_links=False)
        self.book = openpyxl.Workbook(write_only=True)
        self.book.epoch = self.source.epoch
        self.book.defined_names = copy(self.source.defined_names)
        self.styles: dict[int, object] = {}  # the source's style id -> the same style in self.book
        self.sheet = None  # the sheet being written

    def close(self) -> None:
        self.source.close()

    def sheet_names(self) -> list[str]:
        """The worksheets (chart sheets have no cells: they are among unkept_parts)."""
        from openpyxl.worksheet._read_only import ReadOnlyWorksheet

        return [ws.title for ws in self.source.worksheets if isinstance(ws, ReadOnlyWorksheet)]

    def save(self, path: Path) -> None:
        self.book.save(path)

    def copy_sheet(self, name: str, added: Callable[[int], list] | None = None, width: int = 0,
                   last_row: int = 0) -> None:
        """Copy the sheet `name`. With `added`, every row from 1 to `last_row` gets added(row number)'s
        values after its first `width` columns (shorter rows padded, as for a table; `width` covers
        every stored cell), and a merged range reaching past them is not copied."""
        from openpyxl.worksheet._reader import WorkSheetParser

        source_ws = self.source[name]
        ws = self.sheet = self.book.create_sheet(name)
        ws.defined_names = copy(source_ws.defined_names)
        with source_ws._get_source() as xml:
            parser = WorkSheetParser(xml, source_ws._shared_strings, data_only=False, epoch=self.source.epoch,
                                     date_formats=self.source._date_formats,
                                     timedelta_formats=self.source._timedelta_formats)
            rows = parser.parse()
            first = next(rows, None)  # the settings before the cells are parsed by now
            self._copy_top(parser, ws)
            written = 0
            for number, cells in _chain(first, rows):
                for gap in range(written + 1, number):  # rows not stored (empty) keep their numbers
                    ws.append(self._row(gap, [], added, width))
                self._copy_row_dimension(parser, ws, number)
                ws.append(self._row(number, cells, added, width))
                ws.row_dimensions.pop(number, None)
                written = number
            for gap in range(written + 1, last_row + 1 if added else 0):
                ws.append(self._row(gap, [], added, width))
            self._copy_tail(parser, ws, width if added else None)

    def _row(self, number: int, cells: list[dict], added, width: int) -> list:
        values: list = [None] * (width if added else 0)
        for cell in cells:
            column = cell["column"]
            if column > len(values):
                values.extend([None] * (column - len(values)))
            values[column - 1] = self._cell(cell)
        if added:
            values.extend(added(number))
        return values

    def _cell(self, cell: dict):
        from openpyxl.cell import WriteOnlyCell

        value, kind, style = cell["value"], cell["data_type"], cell["style_id"]
        if not style and (not isinstance(value, str) or kind == "s" and not _reads_as_other(value)):
            return value  # the common case, fast: a value with no style of its own
        out = WriteOnlyCell(self.sheet, value=value)
        if kind == "s":  # text stays text, even when it reads like a formula or an error (=A1, #N/A)
            out.data_type = "s"
        if style:
            out._style = copy(self._style(style))
        return out

    def _style(self, style_id: int):
        """The source's cell style `style_id` in the new workbook (each looked up once)."""
        if style_id not in self.styles:
            from openpyxl.cell import WriteOnlyCell
            from openpyxl.cell.read_only import ReadOnlyCell

            model = ReadOnlyCell(self.source.worksheets[0], 1, 1, None, "n", style_id)
            target = WriteOnlyCell(self.sheet)
            for attribute in ("font", "fill", "border", "alignment", "protection", "number_format"):
                setattr(target, attribute, copy(getattr(model, attribute)))
            target._style.quotePrefix = model.style_array.quotePrefix
            self.styles[style_id] = target._style
        return self.styles[style_id]

    def _copy_top(self, parser, ws) -> None:
        from openpyxl.worksheet.dimensions import ColumnDimension

        for setting in TOP_SETTINGS:
            value = getattr(parser, setting, None)
            if value is not None:
                setattr(ws, setting, value)
        for letter, attributes in parser.column_dimensions.items():
            attributes = dict(attributes)
            if "style" in attributes:
                attributes["style"] = copy(self._style(int(attributes["style"])))
            ws.column_dimensions[letter] = ColumnDimension(ws, **attributes)

    def _copy_row_dimension(self, parser, ws, number: int) -> None:
        from openpyxl.worksheet.dimensions import RowDimension

        attributes = parser.row_dimensions.pop(str(number), None)  # popped: memory stays flat
        if attributes is not None:
            attributes = dict(attributes)
            if "s" in attributes:
                attributes["s"] = copy(self._style(int(attributes["s"])))
            ws.row_dimensions[number] = RowDimension(ws, **attributes)

    def _copy_tail(self, parser, ws, width: int | None) -> None:
        from openpyxl.worksheet.cell_range import MultiCellRange

        for setting in TAIL_SETTINGS:
            value = getattr(parser, setting, None)
            if value is not None:
                setattr(ws, setting, value)
        if ws.page_setup is not None:
            ws.page_setup.id = None  # the printer settings part it names is not copied
        if parser.merged_cells is not None:
            # A merge reaching past the table's columns (empty cells: every stored cell is within them)
            # would hide the added columns under it: not copied.
            ranges = MultiCellRange([str(m.ref) for m in parser.merged_cells.mergeCell])
            ws.merged_cells = MultiCellRange([r for r in ranges if width is None or r.max_col <= width])
        for formatting in parser.formatting:
            for rule in formatting.rules:
                if rule.dxfId is not None:
                    rule.dxf = self.source._differential_styles[rule.dxfId]
                ws.conditional_formatting.add(str(formatting.sqref), rule)


def _reads_as_other(text: str) -> bool:
    """Whether openpyxl would take this text for a formula or an error value if given it bare."""
    from openpyxl.cell.cell import ERROR_CODES

    return text.startswith("=") or text in ERROR_CODES


def _chain(first, rest: Iterator) -> Iterator:
    if first is not None:
        yield first
        yield from rest
