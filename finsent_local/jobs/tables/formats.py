"""The format of a file by its extension, opening it as an InputTable, and the output's format."""

from __future__ import annotations

from pathlib import Path

from .base import InputTable, TableError
from .csv_files import DelimitedTable, TextLinesTable
from .json_lines import JsonLinesTable
from .parquet_files import ParquetTable
from .xlsx_files import XlsxTable


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
