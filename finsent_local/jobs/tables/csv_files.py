"""CSV and TSV (any quoting, encoding detected, ';' sniffed) and lines of text (.txt, written as CSV)."""

from __future__ import annotations

import codecs
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from .base import InputTable, RowResult, TableError, _chunked, _no_column, _take, label_count

# A field may be as long as a text the server accepts and more (it then gets a `text_too_long` row
# error); the csv module's default limit (128 KB) would abort the whole file instead.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


# -- CSV and TSV --------------------------------------------------------------------------------------
ENCODING_BLOCK = 1 << 20


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    """The 1-based line of the first bytes `encoding` cannot decode, or None when the whole file
    decodes. One streaming pass (no more than a block in memory)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with open(path, "rb") as f:
        while True:
            block = f.read(ENCODING_BLOCK)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                return line + block[: max(0, e.start)].count(b"\n")
            if not block:
                return None
            line += block.count(b"\n")


# Excel's "CSV" outside the US: the ANSI code page (Windows-1252 in Western Europe and the Americas)
# and, where the decimal mark is a comma, ';' between fields.
FALLBACK_ENCODING = "cp1252"
SNIFFED_DELIMITER = ";"


def choose_encoding(path: Path, asked: str | None, notes: list[str]) -> str:
    """The text encoding to read `path` with: `asked` (checked against the whole file), else UTF-8
    (with or without a byte-order mark), else Windows-1252 with a note saying so."""
    if asked is not None:
        try:
            name = codecs.lookup(asked).name
        except LookupError:
            raise TableError(f"unknown encoding {asked!r} (e.g. utf-8, cp1252, latin-1)") from None
        bad_line = _first_undecodable_line(path, name)
        if bad_line is not None:
            raise TableError(f"{path.name} line {bad_line} is not {asked} text; give the file's encoding "
                             "with --encoding")
        return "utf-8-sig" if name == "utf-8" else name
    bad_line = _first_undecodable_line(path, "utf-8")
    if bad_line is None:
        return "utf-8-sig"
    if _first_undecodable_line(path, FALLBACK_ENCODING) is not None:
        raise TableError(f"{path.name} line {bad_line} is not UTF-8 text (nor Windows-1252); give the "
                         "file's encoding with --encoding, or save it as UTF-8 (Excel: CSV UTF-8)")
    notes.append(f"note: {path.name} is not UTF-8 (line {bad_line}); read as Windows-1252 (--encoding to choose)")
    return FALLBACK_ENCODING


class DelimitedTable(InputTable):
    """CSV (comma) or TSV (tab): any quoting, delimiters and newlines inside quoted fields. UTF-8 with
    or without a byte-order mark (kept in the output); a file that is not UTF-8 is read as Windows-1252
    (Excel's CSV outside the US) and said so; --encoding chooses. A .csv whose header has no comma but
    semicolons is read as ';'-separated (said so). The output keeps the input's encoding and delimiter.
    Every value stays text."""

    def __init__(self, path: Path, column: str, format_name: str, delimiter: str | None = None,
                 encoding: str | None = None):
        super().__init__(path, column)
        self.format_name = format_name
        delimiter_given = delimiter is not None
        self.delimiter = delimiter if delimiter_given else "\t" if format_name == "TSV" else ","
        with open(self.path, "rb") as f:
            self.has_bom = f.read(3) == codecs.BOM_UTF8
        self.encoding = choose_encoding(self.path, encoding, self.notes)
        self.header = self._read_header()
        if self.header is None:
            raise TableError(f"{self.path.name} is empty (a header row naming the columns is needed)")
        if not delimiter_given and column not in self.header and len(self.header) == 1 \
                and SNIFFED_DELIMITER in self.header[0] and self.delimiter == ",":
            self.delimiter = SNIFFED_DELIMITER
            self.header = self._read_header()
            self.notes.append(f"note: {self.path.name} is read as ';'-separated (--delimiter to choose)")
        if column not in self.header:
            hint = ""
            if len(self.header) == 1 and SNIFFED_DELIMITER in self.header[0]:
                hint = " (it looks ';'-separated: try --delimiter ';')"
            raise _no_column(column, self.path.name, self.header, hint)
        self.index = self.header.index(column)

    def _output_encoding(self) -> str:
        if self.encoding == "utf-8-sig":  # read either way; the byte-order mark is written back only if there was one
            return "utf-8-sig" if self.has_bom else "utf-8"
        return self.encoding

    def column_names(self) -> list[str]:
        return self.header

    class _Open:
        def __init__(self, table: DelimitedTable):
            self.table = table
            self.file = open(table.path, encoding=table.encoding, newline="")
            self.rows = csv.reader(self.file, delimiter=table.delimiter)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def next_row(self) -> list[str] | None:
            try:
                return next(self.rows, None)
            except csv.Error as e:
                raise TableError(f"{self.table.path.name} line {self.rows.line_num} is not readable "
                                 f"{self.table.format_name}: {e}") from None

    def _read_header(self) -> list[str] | None:
        with self._Open(self) as reader:
            return reader.next_row()

    def _data_rows(self) -> Iterator[list[str]]:
        with self._Open(self) as reader:
            reader.next_row()  # the header
            while (row := reader.next_row()) is not None:
                yield row

    def count_rows(self) -> int:
        # One quick pass, no model involved: also checks that the whole file parses before any work starts.
        return sum(1 for _ in self._data_rows())

    def texts(self, chunk_rows: int) -> Iterator[list]:
        for chunk in _chunked(self._data_rows(), chunk_rows):
            yield [row[self.index] if self.index < len(row) else "" for row in chunk]

    def write_scored(self, out_path: Path, results: Iterator[RowResult], added_columns: list[str]) -> None:
        n_labels = label_count(added_columns)
        # Rows wider than the header keep their extra fields: the new columns go after the widest row.
        width = max(len(self.header), max((len(row) for row in self._data_rows()), default=0))
        header = self.header + [""] * (width - len(self.header))
        with open(out_path, "w", encoding=self._output_encoding(), newline="") as f:
            writer = csv.writer(f, delimiter=self.delimiter)
            writer.writerow(header + added_columns)
            for chunk in _chunked(self._data_rows(), 1024):
                for row, result in zip(chunk, _take(results, len(chunk))):
                    writer.writerow(row + [""] * (width - len(row)) + _csv_values(result.values(n_labels)))


def _csv_values(values: list) -> list:
    return ["" if v is None else plain_decimal(v) if isinstance(v, float) else v for v in values]


def plain_decimal(value: float) -> str:
    """A score or probability as a plain decimal (0.000003, not 3e-06: spreadsheets in some locales
    read an exponent as text), with enough digits to round-trip float32 precision."""
    text = f"{value:.9f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


# -- plain text: one text per line ---------------------------------------------------------------------------
class TextLinesTable(InputTable):
    """A .txt file, one text per line, as the web page reads it. Every line is a row, blank ones too
    (an error row each, so row N of the output is line N of the file). Encoding as for CSV. Written as
    CSV (UTF-8 with a byte-order mark, as the page's download, so Excel reads it): text, then the
    result columns."""

    format_name = "text lines"
    output_format = "CSV"
    COLUMN = "text"

    def __init__(self, path: Path, column: str | None, encoding: str | None = None):
        if column not in (None, self.COLUMN):
            raise TableError(f"{path.name} is lines of text, not a table: leave out --column")
        super().__init__(path, self.COLUMN)
        self.encoding = choose_encoding(self.path, encoding, self.notes)

    def column_names(self) -> list[str]:
        return [self.COLUMN]

    def _lines(self) -> Iterator[str]:
        # Text-mode iteration ends lines at \n, \r\n and \r only: a U+2028 inside a headline stays in it.
        with open(self.path, encoding=self.encoding) as f:
            for line in f:
                yield line.rstrip("\n")

    def count_rows(self) -> int:
        return sum(1 for _ in self._lines())

    def texts(self, chunk_rows: int) -> Iterator[list]:
        yield from _chunked(self._lines(), chunk_rows)

    def write_scored(self, out_path: Path, results: Iterator[RowResult], added_columns: list[str]) -> None:
        n_labels = label_count(added_columns)
        with open(out_path, "w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([self.COLUMN] + added_columns)
            for chunk in _chunked(self._lines(), 1024):
                for line, result in zip(chunk, _take(results, len(chunk))):
                    writer.writerow([line] + _csv_values(result.values(n_labels)))
