"""Tables by file format, read and written in bounded chunks: CSV/TSV, JSON Lines, Parquet, XLSX, and
lines of text (.txt, written as CSV).

A file job reads its input twice: once for the values of one column (the texts to classify), once
for whole rows (written out with each row's result appended). Neither pass holds more than one chunk
of rows in memory, whatever the file's size. Every input column and row is kept, in order.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import JobError

# A field may be as long as a text the server accepts and more (it then gets a `text_too_long` row
# error); the csv module's default limit (128 KB) would abort the whole file instead.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class TableError(JobError):
    """The file cannot be read or written as asked: one line for the user."""


@dataclass(frozen=True)
class RowResult:
    """One row's outcome: a label with its score and probabilities (in label order), or an error."""

    label: str | None = None
    score: float | None = None
    probs: tuple[float, ...] | None = None
    error: str = ""

    def values(self, n_labels: int) -> list:
        probs = self.probs if self.probs is not None else (None,) * n_labels
        return [self.label, self.score, *probs, self.error]


def probability_column(label: str, prefix: str = "") -> str:
    """The column of a label's probability: p_<label>, spaces as underscores (p_strong_negative)."""
    return f"{prefix}p_{label.replace(' ', '_')}"


def result_columns(labels: tuple[str, ...], prefix: str = "") -> list[str]:
    """The columns a job appends: label, score, one p_<label> per label, error."""
    return [f"{prefix}label", f"{prefix}score", *(probability_column(label, prefix) for label in labels),
            f"{prefix}error"]


def label_count(added_columns: list[str]) -> int:
    """How many p_<label> columns are among the added ones (besides label, score and error)."""
    return len(added_columns) - 3


def result_arrays(results: list[RowResult], added_columns: list[str]) -> list:
    """The added columns as pyarrow arrays (label and error text, score and probabilities float64)."""
    import pyarrow as pa

    n_labels = label_count(added_columns)
    kinds = [pa.string(), pa.float64(), *([pa.float64()] * n_labels), pa.string()]
    rows = [r.values(n_labels) for r in results]
    return [pa.array([row[i] for row in rows], type=kind) for i, kind in enumerate(kinds)]


def _column_list(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _no_column(column: str | None, where: str, names: list[str], hint: str = "") -> TableError:
    if not column:
        return TableError(f"--column is needed: which column of {where} holds the texts? "
                          f"Its columns: {_column_list(names)}{hint}")
    return TableError(f"no column {column!r} in {where}; its columns: {_column_list(names)}{hint}")


class InputTable(ABC):
    """An input file: the chosen column's values, then whole rows for the output."""

    format_name = ""

    @property
    def output_format(self) -> str:
        """The format its scored copy is written in: the input's own (lines of text: CSV)."""
        return self.format_name

    def __init__(self, path: Path, column: str):
        self.path = Path(path)
        self.column = column
        self.notes: list[str] = []  # what the user should know about how the file was read, one line each

    @abstractmethod
    def count_rows(self) -> int | None:
        """Data rows (header excluded), or None when unknown without reading everything."""

    @abstractmethod
    def texts(self, chunk_rows: int) -> Iterator[list]:
        """The column's value for every row, in chunks of at most `chunk_rows`."""

    @abstractmethod
    def write_scored(self, out_path: Path, results: Iterator[RowResult], added_columns: list[str]) -> None:
        """Write every input row with its result appended (results come in row order)."""

    def check_new_columns(self, added_columns: list[str]) -> None:
        taken = [c for c in added_columns if c in self.column_names()]
        if taken:
            raise TableError(f"{self.path.name} already has a column named {taken[0]!r}; "
                             "name the new columns differently with --prefix (e.g. --prefix finsent_)")

    def column_names(self) -> list[str]:
        return []


def _take(results: Iterator[RowResult], n: int) -> list[RowResult]:
    taken = [r for _, r in zip(range(n), results)]
    if len(taken) != n:
        raise TableError("the saved results are shorter than the input (did the input change?)")
    return taken


def _chunked(rows, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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


# -- JSON Lines -------------------------------------------------------------------------------------------
def read_json_record(line: str) -> dict | None:
    """The JSON object on a line, or None when the line is not one (broken JSON, a list, a number)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def record_value(record: dict | None, column: str) -> object:
    return _NOT_AN_OBJECT if record is None else record.get(column)


def clashing_key(record: dict | None, added_columns: list[str]) -> str | None:
    """A key of the record that the added columns would overwrite."""
    taken = set(added_columns).intersection(record) if record is not None else ()
    return min(taken) if taken else None


def clashing_key_error(key: str, where: str) -> TableError:
    return TableError(f"{where} already has a key named {key!r}; name the new keys differently with --prefix "
                      "(e.g. --prefix finsent_)")


def scored_record_line(record: dict | None, line: str, added_columns: list[str], result: RowResult) -> str:
    """The output line of one input line: the record with the result's keys added; a line that is not
    a JSON object is kept whole as {"input_line": ...}, so nothing is lost."""
    scored = {"input_line": line} if record is None else dict(record)
    scored.update(zip(added_columns, result.values(label_count(added_columns))))
    return json_line(scored)


class JsonLinesTable(InputTable):
    """One JSON object per line; blank lines are not records and are skipped. A line that is not a JSON
    object becomes a row with an error, written as {"input_line": ...} so nothing is lost."""

    format_name = "JSON Lines"

    def __init__(self, path: Path, column: str):
        super().__init__(path, column)
        first = next((record for record, _ in self._records() if record is not None), None)
        if first is not None and column not in first:
            raise _no_column(column, f"the first record of {self.path.name}", list(first))

    def _records(self) -> Iterator[tuple[dict | None, str]]:
        try:
            with open(self.path, encoding="utf-8-sig") as f:
                for line in f:
                    if line.strip():
                        yield read_json_record(line), line.rstrip("\r\n")
        except UnicodeDecodeError:
            raise TableError(f"{self.path.name} is not UTF-8 text") from None

    def count_rows(self) -> int:
        return sum(1 for _ in self._records())

    def texts(self, chunk_rows: int) -> Iterator[list]:
        for chunk in _chunked(self._records(), chunk_rows):
            yield [record_value(record, self.column) for record, _ in chunk]

    def check_new_columns(self, added_columns: list[str]) -> None:
        # Records may differ in their keys: every record is looked at (one pass, before any scoring).
        for number, (record, _) in enumerate(self._records(), start=1):
            key = clashing_key(record, added_columns)
            if key is not None:
                raise clashing_key_error(key, f"record {number:,} of {self.path.name}")

    def write_scored(self, out_path: Path, results: Iterator[RowResult], added_columns: list[str]) -> None:
        with open(out_path, "w", encoding="utf-8") as f:
            for chunk in _chunked(self._records(), 1024):
                for (record, line), result in zip(chunk, _take(results, len(chunk))):
                    f.write(scored_record_line(record, line, added_columns, result) + "\n")


def json_line(record: dict) -> str:
    """A record as one JSON line, readable characters kept as they are. A string holding a lone surrogate
    (an escaped "\\ud83d" in the input: scraped text cut inside an emoji) cannot be written as UTF-8;
    that record is written with \\u escapes instead, which read back to the same value."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record)
    return line


class NotText:
    """A row whose value cannot be a text at all (a JSON line that is not an object)."""

    def __init__(self, reason: str):
        self.reason = reason


_NOT_AN_OBJECT = NotText("the line is not a JSON object")


# -- Parquet ---------------------------------------------------------------------------------------------
class ParquetTable(InputTable):
    """Read and written batch by batch with pyarrow; the output keeps the input's schema and types."""

    format_name = "Parquet"

    def __init__(self, path: Path, column: str, text_only: bool = True):
        super().__init__(path, column)
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self.file = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as e:
            raise TableError(f"{self.path.name} is not a readable Parquet file ({e})") from None
        self.schema = self.file.schema_arrow
        if column not in self.schema.names:
            raise _no_column(column, self.path.name, self.schema.names)
        kind = self.schema.field(column).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if text_only and not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
            raise TableError(f"column {column!r} of {self.path.name} holds {kind}, not text")

    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def count_rows(self) -> int:
        return self.file.metadata.num_rows

    def texts(self, chunk_rows: int) -> Iterator[list]:
        for batch in self.file.iter_batches(batch_size=chunk_rows, columns=[self.column]):
            yield batch.column(0).to_pylist()

    def write_scored(self, out_path: Path, results: Iterator[RowResult], added_columns: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self.schema
        for name, array in zip(added_columns, result_arrays([], added_columns)):
            schema = schema.append(pa.field(name, array.type))
        with pq.ParquetWriter(out_path, schema) as writer:
            for batch in self.file.iter_batches(batch_size=8192):
                added = result_arrays(_take(results, batch.num_rows), added_columns)
                writer.write_batch(pa.RecordBatch.from_arrays([*batch.columns, *added], schema=schema))


# -- XLSX -------------------------------------------------------------------------------------------------
FORMULA_WITHOUT_VALUE = NotText("formula without a saved value (open the workbook in Excel and save it, so "
                                "the formula's result is stored)")


class XlsxTable(InputTable):
    """One sheet of a workbook (--sheet, default the first), its first row the header. --column is a
    header (exact, else the one header equal to it ignoring case) or a column letter (B); which column
    was taken is said when it was not an exact header. Cells are read as values (a formula's last saved
    value). The sheet's recorded size (<dimension>) is not trusted: files written by other tools
    often have it wrong or missing, and openpyxl would stop reading at it. Rows shorter than the widest
    are padded, as in CSV. The output workbook holds that sheet with the results appended (openpyxl's
    streaming mode keeps memory flat but cannot copy the other sheets; said when there are others)."""

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
        others = [name for name in names if name != self.sheet]
        if others:
            self.notes.append(f"note: the output workbook holds only the sheet {self.sheet!r}; the input's other "
                              f"sheets ({_column_list(others)}) are not copied")

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
        from openpyxl.cell import WriteOnlyCell

        n_labels = label_count(added_columns)
        book = self._openpyxl.Workbook(write_only=True)
        ws = book.create_sheet(self.sheet)

        def cell(value):
            if isinstance(value, str) and value.startswith("="):  # text, not a formula to run
                c = WriteOnlyCell(ws, value=value)
                c.data_type = "s"
                return c
            return value

        ws.append([cell(v) for v in self.header] + added_columns)
        for chunk in _chunked(self._rows(), 1024):
            for row, result in zip(chunk, _take(results, len(chunk))):
                padded = list(row) + [None] * (self.width - len(row))
                ws.append([cell(v) for v in padded] + result.values(n_labels))
        book.save(out_path)


# -- by extension -----------------------------------------------------------------------------------------
FORMATS = {".csv": "CSV", ".tsv": "TSV", ".jsonl": "JSON Lines", ".parquet": "Parquet", ".xlsx": "Excel",
           ".txt": "text lines"}


def file_format(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TableError(f"unknown file format {suffix or '(no extension)'!r} for {Path(path).name}; "
                         f"use one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def open_table(path: Path, column: str | None, sheet: str | None = None, encoding: str | None = None,
               delimiter: str | None = None, text_only: bool = True) -> InputTable:
    """The input as a table; `encoding` and `delimiter` are for CSV/TSV (None: detected). With
    text_only=False a Parquet column of any type is read (a column of gold labels: integers, scores)."""
    path = Path(path)
    kind = file_format(path)
    if path.is_dir():
        raise TableError(f"{path} is a folder (folders of Parquet files are read with --ray)")
    if not path.is_file():
        raise TableError(f"input file not found: {path}")
    if sheet is not None and kind != "Excel":
        raise TableError("--sheet is for .xlsx workbooks")
    if encoding is not None and kind not in ("CSV", "TSV", "text lines"):
        raise TableError("--encoding is for .csv, .tsv and .txt files")
    if delimiter is not None and kind not in ("CSV", "TSV"):
        raise TableError("--delimiter is for .csv and .tsv files")
    if delimiter is not None and len(delimiter) != 1:
        raise TableError(f"--delimiter is one character (',' ';' or a tab), not {delimiter!r}")
    try:
        if kind in ("CSV", "TSV"):
            return DelimitedTable(path, column, kind, delimiter, encoding)
        if kind == "text lines":
            return TextLinesTable(path, column, encoding)
        if kind == "JSON Lines":
            return JsonLinesTable(path, column)
        if kind == "Parquet":
            return ParquetTable(path, column, text_only)
        return XlsxTable(path, column, sheet)
    except PermissionError:
        raise TableError(f"cannot read {path}: permission denied") from None


def check_output_format(input_table: InputTable, output: Path) -> None:
    """The output is written in the input's format (every column keeps its type and layout), lines of
    text as CSV."""
    wanted = input_table.output_format
    if file_format(output) != wanted:
        suffix = next(s for s, k in FORMATS.items() if k == wanted)
        if wanted != input_table.format_name:
            raise TableError(f"{input_table.path.name} is written as {wanted}: give the output the extension {suffix}")
        raise TableError(f"the output is written in the input's format: give it the extension {suffix}")
