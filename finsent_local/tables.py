"""Tables by file format, read and written in bounded chunks: CSV/TSV, JSON Lines, Parquet, XLSX.

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

# A field may be as long as a text the server accepts and more (it then gets a `text_too_long` row
# error); the csv module's default limit (128 KB) would abort the whole file instead.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class TableError(Exception):
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


def result_columns(labels: tuple[str, ...], prefix: str = "") -> list[str]:
    """The columns a job appends: label, score, one p_<label> per label (spaces as underscores), error."""
    return [f"{prefix}label", f"{prefix}score", *(f"{prefix}p_{label.replace(' ', '_')}" for label in labels),
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

    def __init__(self, path: Path, column: str):
        self.path = Path(path)
        self.column = column

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
class DelimitedTable(InputTable):
    """CSV (comma) or TSV (tab): any quoting, delimiters and newlines inside quoted fields, UTF-8 with or
    without a byte-order mark (kept in the output when the input has one). Every value stays text."""

    def __init__(self, path: Path, column: str, delimiter: str):
        super().__init__(path, column)
        self.delimiter = delimiter
        self.format_name = "TSV" if delimiter == "\t" else "CSV"
        with open(self.path, "rb") as f:
            self.has_bom = f.read(3) == codecs.BOM_UTF8
        with self._reader() as (_, rows):
            self.header = self._read(lambda: next(rows, None))
        if self.header is None:
            raise TableError(f"{self.path.name} is empty (a header row naming the columns is needed)")
        if column not in self.header:
            raise _no_column(column, self.path.name, self.header)
        self.index = self.header.index(column)

    def column_names(self) -> list[str]:
        return self.header

    class _Open:
        def __init__(self, table: DelimitedTable):
            self.file = open(table.path, encoding="utf-8-sig", newline="")
            self.rows = csv.reader(self.file, delimiter=table.delimiter)

        def __enter__(self):
            return self.file, self.rows

        def __exit__(self, *exc):
            self.file.close()

    def _reader(self) -> _Open:
        return self._Open(self)

    def _read(self, step):
        try:
            return step()
        except UnicodeDecodeError as e:
            raise TableError(f"{self.path.name} is not UTF-8 text (byte {e.start} of a block); save it as "
                             "UTF-8 (Excel: CSV UTF-8)") from None
        except csv.Error as e:
            raise TableError(f"{self.path.name} is not readable {self.format_name}: {e}") from None

    def _data_rows(self) -> Iterator[list[str]]:
        with self._reader() as (_, rows):
            self._read(lambda: next(rows))  # the header
            while True:
                row = self._read(lambda: next(rows, None))
                if row is None:
                    return
                yield row

    def count_rows(self) -> int:
        # One quick pass, no model involved: also checks that the whole file decodes and parses
        # before any work starts.
        return sum(1 for _ in self._data_rows())

    def texts(self, chunk_rows: int) -> Iterator[list]:
        for chunk in _chunked(self._data_rows(), chunk_rows):
            yield [row[self.index] if self.index < len(row) else "" for row in chunk]

    def write_scored(self, out_path: Path, results: Iterator[RowResult], added_columns: list[str]) -> None:
        n_labels = label_count(added_columns)
        # Rows wider than the header keep their extra fields: the new columns go after the widest row.
        width = max(len(self.header), max((len(row) for row in self._data_rows()), default=0))
        header = self.header + [""] * (width - len(self.header))
        with open(out_path, "w", encoding="utf-8-sig" if self.has_bom else "utf-8", newline="") as f:
            writer = csv.writer(f, delimiter=self.delimiter)
            writer.writerow(header + added_columns)
            for chunk in _chunked(self._data_rows(), 1024):
                for row, result in zip(chunk, _take(results, len(chunk))):
                    writer.writerow(row + [""] * (width - len(row)) + _csv_values(result.values(n_labels)))


def _csv_values(values: list) -> list:
    return ["" if v is None else repr(v) if isinstance(v, float) else v for v in values]


# -- JSON Lines -------------------------------------------------------------------------------------------
_BAD_LINE = object()


class JsonLinesTable(InputTable):
    """One JSON object per line; blank lines are not records and are skipped. A line that is not a JSON
    object becomes a row with an error, written as {"input_line": ...} so nothing is lost."""

    format_name = "JSON Lines"

    def __init__(self, path: Path, column: str):
        super().__init__(path, column)
        first = next((obj for obj, _ in self._records() if isinstance(obj, dict)), None)
        if first is not None and column not in first:
            raise _no_column(column, f"the first record of {self.path.name}", list(first))

    def _records(self) -> Iterator[tuple[object, str]]:
        try:
            with open(self.path, encoding="utf-8-sig") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        obj = _BAD_LINE
                    yield (obj if isinstance(obj, dict) else _BAD_LINE), line.rstrip("\r\n")
        except UnicodeDecodeError:
            raise TableError(f"{self.path.name} is not UTF-8 text") from None

    def count_rows(self) -> int:
        return sum(1 for _ in self._records())

    def texts(self, chunk_rows: int) -> Iterator[list]:
        for chunk in _chunked(self._records(), chunk_rows):
            yield [_NOT_AN_OBJECT if obj is _BAD_LINE else obj.get(self.column) for obj, _ in chunk]

    def write_scored(self, out_path: Path, results: Iterator[RowResult], added_columns: list[str]) -> None:
        n_labels = label_count(added_columns)
        with open(out_path, "w", encoding="utf-8") as f:
            for chunk in _chunked(self._records(), 1024):
                for (obj, line), result in zip(chunk, _take(results, len(chunk))):
                    record = {"input_line": line} if obj is _BAD_LINE else dict(obj)
                    record.update(zip(added_columns, result.values(n_labels)))
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")


class NotText:
    """A row whose value cannot be a text at all (a JSON line that is not an object)."""

    def __init__(self, reason: str):
        self.reason = reason


_NOT_AN_OBJECT = NotText("the line is not a JSON object")


# -- Parquet ---------------------------------------------------------------------------------------------
class ParquetTable(InputTable):
    """Read and written batch by batch with pyarrow; the output keeps the input's schema and types."""

    format_name = "Parquet"

    def __init__(self, path: Path, column: str):
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
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
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
class XlsxTable(InputTable):
    """One sheet of a workbook (--sheet, default the first), its first row the header. --column is a
    header or a column letter (B). Cells are read as values (a formula's last computed value); the output
    workbook holds that sheet with the results appended. Written in openpyxl's streaming mode."""

    format_name = "Excel"

    def __init__(self, path: Path, column: str, sheet: str | None):
        super().__init__(path, column)
        import openpyxl
        from openpyxl.utils import column_index_from_string

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
            ws = book[self.sheet]
            first = next(ws.iter_rows(max_row=1, values_only=True), ())
            self.header = ["" if v is None else str(v) for v in first]
            self.max_row = ws.max_row
        finally:
            book.close()
        if column and column in self.header:
            self.index = self.header.index(column)
        else:
            try:
                self.index = column_index_from_string((column or "").upper()) - 1
            except ValueError:
                raise _no_column(column, f"sheet {self.sheet!r} of {self.path.name}", [h for h in self.header if h],
                                 " (or a letter, e.g. B)") from None

    def column_names(self) -> list[str]:
        return self.header

    def _rows(self) -> Iterator[tuple]:
        book = self._openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        try:
            yield from book[self.sheet].iter_rows(min_row=2, values_only=True)
        finally:
            book.close()

    def count_rows(self) -> int | None:
        return self.max_row - 1 if self.max_row else None

    def texts(self, chunk_rows: int) -> Iterator[list]:
        for chunk in _chunked(self._rows(), chunk_rows):
            yield [row[self.index] if self.index < len(row) else None for row in chunk]

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
                ws.append([cell(v) for v in row] + result.values(n_labels))
        book.save(out_path)


# -- by extension -----------------------------------------------------------------------------------------
FORMATS = {".csv": "CSV", ".tsv": "TSV", ".jsonl": "JSON Lines", ".parquet": "Parquet", ".xlsx": "Excel"}


def file_format(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TableError(f"unknown file format {suffix or '(no extension)'!r} for {Path(path).name}; "
                         f"use one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def open_table(path: Path, column: str | None, sheet: str | None = None) -> InputTable:
    path = Path(path)
    kind = file_format(path)
    if path.is_dir():
        raise TableError(f"{path} is a folder (folders of Parquet files are read with --ray)")
    if not path.is_file():
        raise TableError(f"input file not found: {path}")
    if sheet is not None and kind != "Excel":
        raise TableError("--sheet is for .xlsx workbooks")
    try:
        if kind in ("CSV", "TSV"):
            return DelimitedTable(path, column, "\t" if kind == "TSV" else ",")
        if kind == "JSON Lines":
            return JsonLinesTable(path, column)
        if kind == "Parquet":
            return ParquetTable(path, column)
        return XlsxTable(path, column, sheet)
    except PermissionError:
        raise TableError(f"cannot read {path}: permission denied") from None


def check_output_format(input_table: InputTable, output: Path) -> None:
    """The output is written in the input's format: every column keeps its type and layout."""
    if file_format(output) != input_table.format_name:
        suffix = next(s for s, k in FORMATS.items() if k == input_table.format_name)
        raise TableError(f"the output is written in the input's format: give it the extension {suffix}")
