"""Tables by file format, read and written in bounded chunks: CSV/TSV, JSON Lines, Parquet, XLSX, and
lines of text (.txt, written as CSV). One module per format (csv_files, json_lines, parquet_files,
xlsx_files, with xlsx_copy for the output workbook), what they share in base, and the choice by
extension in formats.

A file job reads its input twice: once for the values of one column (the texts to classify), once
for whole rows (written out with each row's result appended). Neither pass holds more than one chunk
of rows in memory, whatever the file's size. Every input column and row is kept, in order.
"""

from .base import (InputTable, NotText, RowResult, TableError, label_count, probability_column, result_arrays,
                   result_columns)
from .csv_files import (FALLBACK_ENCODING, SNIFFED_DELIMITER, DelimitedTable, TextLinesTable, choose_encoding,
                        plain_decimal)
from .formats import FORMATS, check_output_format, file_format, open_table
from .json_lines import (JsonLinesTable, clashing_key, clashing_key_error, json_line, read_json_record,
                         record_value, scored_record_line, split_json_lines)
from .parquet_files import ParquetTable
from .xlsx_files import FORMULA_WITHOUT_VALUE, XlsxTable

__all__ = [
    "FALLBACK_ENCODING", "FORMATS", "FORMULA_WITHOUT_VALUE", "SNIFFED_DELIMITER", "DelimitedTable", "InputTable",
    "JsonLinesTable", "NotText", "ParquetTable", "RowResult", "TableError", "TextLinesTable", "XlsxTable",
    "check_output_format", "choose_encoding", "clashing_key", "clashing_key_error", "file_format", "json_line",
    "label_count", "open_table", "plain_decimal", "probability_column", "read_json_record", "record_value",
    "result_arrays", "result_columns", "scored_record_line", "split_json_lines",
]
