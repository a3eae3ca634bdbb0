"""Parquet: read and written batch by batch with pyarrow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import InputTable, RowResult, TableError, _no_column, _take, result_arrays


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
