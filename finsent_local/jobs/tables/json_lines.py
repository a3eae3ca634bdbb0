"""JSON Lines: one JSON object per line, each record written back whole with the added keys; the
helpers here also serve the Ray job's JSON Lines scorer."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import InputTable, NotText, RowResult, TableError, _chunked, _no_column, _take, label_count


READ_BYTES = 4 << 20  # a JSON Lines file is read this much at a time
JSON_WHITESPACE = b" \t\r"  # (and \n, which ends the line): a line of nothing else is blank


def split_json_lines(f: BinaryIO, name: str, block_size: int = READ_BYTES) -> Iterator[list[str]]:
    """The lines of a JSON Lines file opened in binary mode, a list of them per block read: the one
    definition of a line, for the file job and the Ray job alike. As the JSON Lines format has it, a
    line ends at \n (\r\n too: the \r goes with the ending); nothing else ends a line: not a lone \r
    (a JSON string cannot hold one unescaped, so a file of CR-only endings is one long line, not
    records), nor U+2028, U+2029 or U+0085 (which str.splitlines breaks at, and a JSON string may hold
    as they are). Blank lines (JSON whitespace only) are not records and are skipped; a UTF-8
    byte-order mark at the start is dropped. TableError when the file is not UTF-8 text."""
    pending = f.read(len(codecs.BOM_UTF8)).removeprefix(codecs.BOM_UTF8)
    while True:
        chunk = f.read(block_size)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop() if chunk else b""
        try:
            texts = [(line[:-1] if line.endswith(b"\r") else line).decode("utf-8")
                     for line in lines if line.strip(JSON_WHITESPACE)]
        except UnicodeDecodeError:
            raise TableError(f"{name} is not UTF-8 text") from None
        yield texts
        if not chunk:
            return


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
    """One JSON object per line (lines as split_json_lines() has them); blank lines are not records and are
    skipped. A line that is not a JSON object becomes a row with an error, written as {"input_line": ...}
    so nothing is lost."""

    format_name = "JSON Lines"

    def __init__(self, path: Path, column: str):
        super().__init__(path, column)
        opening = next(self._records(), None)
        if opening is not None and opening[0] is None and "\r" in opening[1]:
            self.notes.append(f"note: {self.path.name} ends its lines with a lone CR (\\r), not LF (\\n) as JSON Lines "
                              "does: it is read as one line; save it with LF or CRLF line endings")
        first = next((record for record, _ in self._records() if record is not None), None)
        if first is not None and column not in first:
            raise _no_column(column, f"the first record of {self.path.name}", list(first))

    def _records(self) -> Iterator[tuple[dict | None, str]]:
        with open(self.path, "rb") as f:
            for lines in split_json_lines(f, self.path.name):
                for line in lines:
                    yield read_json_record(line), line

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


_NOT_AN_OBJECT = NotText("the line is not a JSON object")
