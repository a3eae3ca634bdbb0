"""What every table format shares: the error, a row's result and the columns it adds, and InputTable,
the reader/writer each format implements (one chunk of rows in memory at a time)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import JobError


class TableError(JobError):
    """The file cannot be read or written as asked: one line for the user."""


@dataclass(frozen=True)
class RowResult:
    """One row's outcome: a label with its score and probabilities (in label order), or an error; with
    `finsent classify --explain`, `why` too (a text, "" when there is none): the last column."""

    label: str | None = None
    score: float | None = None
    probs: tuple[float, ...] | None = None
    error: str = ""
    why: str | None = None

    def values(self, n_labels: int) -> list:
        probs = self.probs if self.probs is not None else (None,) * n_labels
        return [self.label, self.score, *probs, self.error, *(() if self.why is None else (self.why,))]


def probability_column(label: str, prefix: str = "") -> str:
    """The column of a label's probability: p_<label>, spaces as underscores (p_strong_negative)."""
    return f"{prefix}p_{label.replace(' ', '_')}"


def result_columns(labels: tuple[str, ...], prefix: str = "", why: bool = False) -> list[str]:
    """The columns a job appends: label, score, one p_<label> per label, error (and why, with --explain)."""
    return [f"{prefix}label", f"{prefix}score", *(probability_column(label, prefix) for label in labels),
            f"{prefix}error", *([f"{prefix}why"] if why else [])]


def has_why(added_columns: list[str]) -> bool:
    """Whether the last added column is why (classify --explain): the first added column is <prefix>label."""
    return added_columns[-1] == added_columns[0][: -len("label")] + "why"


def label_count(added_columns: list[str]) -> int:
    """How many p_<label> columns are among the added ones (besides label, score, error and why)."""
    return len(added_columns) - 3 - has_why(added_columns)


# Number columns that hold a count or a 0-based position (the document job's, jobs/documents.
# document_columns): int64 in Arrow and Parquet, null where there is none, never floats.
INTEGER_COLUMNS = ("sentences", "most_positive_sentence", "most_negative_sentence")


def result_arrays(results: list[RowResult], added_columns: list[str]) -> list:
    """The added columns as pyarrow arrays (label and error text, score and probabilities float64, the
    INTEGER_COLUMNS int64)."""
    import pyarrow as pa

    n_labels = label_count(added_columns)
    prefix = added_columns[0][: -len("label")]  # the first added column is <prefix>label
    numbers = [pa.int64() if name[len(prefix):] in INTEGER_COLUMNS else pa.float64()
               for name in added_columns[2 : 2 + n_labels]]
    kinds = [pa.string(), pa.float64(), *numbers, pa.string(), *([pa.string()] if has_why(added_columns) else [])]
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


class NotText:
    """A row whose value cannot be a text at all (a JSON line that is not an object)."""

    def __init__(self, reason: str):
        self.reason = reason

