"""A benchmark's rows from the Hugging Face hub: downloaded once with huggingface-hub into its cache (the
same one every hub client uses, HF_HOME), read from the cache offline, and checked against what FinGPT's
code reads (the columns, the label values), so a set that changed upstream is one line, not a wrong score.

Only the files of the splits a benchmark uses are downloaded, at the revision it names; the commit that
revision resolved to is recorded with the figures. The files are read as the datasets library reads them
when FinGPT's code calls load_dataset: Parquet with pyarrow, CSV with pandas.read_csv and its defaults,
a split's files in name order and the splits in the order the benchmark concatenates them.

The download and its one-line failures are hub_datasets.py's, shared with `finsent tune`'s default
reference texts.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from .benchmarks import Benchmark, BenchmarkError, BenchmarkRows, benchmark_test_set


def load_benchmark(benchmark: Benchmark, quiet: bool = False) -> BenchmarkRows:
    """The benchmark's test set: downloaded (or found in the cache), read, split and labelled."""
    folder = download(benchmark, quiet)
    files = split_files(benchmark, folder)
    columns = read_columns(benchmark, files)
    source = {"repo": benchmark.repo_id, "revision": benchmark.revision, "commit": folder.name,
              "files": {split: [str(p.relative_to(folder)) for p in paths] for split, paths in files.items()},
              "split": benchmark.split_text, "fingpt_code": benchmark.fingpt_file}
    return benchmark_test_set(benchmark, columns, source)


def _patterns(benchmark: Benchmark) -> list[str]:
    return [pattern.format(split=split) for split in benchmark.splits for pattern in benchmark.file_patterns]


def download(benchmark: Benchmark, quiet: bool = False) -> Path:
    """The snapshot folder holding the benchmark's files (named after the commit its revision resolved to)."""
    from ..hub_datasets import HubDatasetError, download_dataset_files

    try:
        return download_dataset_files(benchmark.repo_id, benchmark.revision, _patterns(benchmark),
                                      f"the {benchmark.title} benchmark set ({benchmark.repo_id})", quiet,
                                      short_what=f"the {benchmark.title} benchmark set")
    except HubDatasetError as e:
        raise BenchmarkError(str(e)) from None


def split_files(benchmark: Benchmark, folder: Path) -> dict[str, list[Path]]:
    """Each split's files in the snapshot: those of the first of the benchmark's patterns that finds any."""
    present = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    found = {}
    for split in benchmark.splits:
        for pattern in benchmark.file_patterns:
            matched = [p for p in present if fnmatch.fnmatchcase(p, pattern.format(split=split))]
            if matched:
                found[split] = [folder / p for p in matched]
                break
        else:
            wanted = " or ".join(p.format(split=split) for p in benchmark.file_patterns)
            raise BenchmarkError(f"the {benchmark.title} set ({benchmark.repo_id} at {folder.name[:12]}) has no file "
                                 f"{wanted} for its {split} split: its upstream files changed")
    return found


def read_columns(benchmark: Benchmark, files: dict[str, list[Path]]) -> dict[str, list]:
    """The benchmark's columns over its splits' files, concatenated in order."""
    columns: dict[str, list] = {name: [] for name in benchmark.columns}
    for split, paths in files.items():
        for path in paths:
            table = _read_table(path, benchmark)
            missing = [c for c in benchmark.columns if c not in table]
            if missing:
                raise BenchmarkError(
                    f"the {benchmark.title} set's {split} file {path.name} has no column {', '.join(missing)} (its "
                    f"columns: {', '.join(table) or 'none'}): its upstream files changed; FinGPT's "
                    f"{benchmark.fingpt_file} reads {', '.join(benchmark.columns)}")
            for name in benchmark.columns:
                columns[name].extend(table[name])
    return columns


def _read_table(path: Path, benchmark: Benchmark) -> dict[str, list]:
    """A data file's columns as Python lists, read as the datasets library reads that format."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            return {name: table.column(name).to_pylist() for name in table.column_names}
        if path.suffix == ".csv":
            import pandas as pd  # what datasets' CSV builder reads with (pandas.read_csv, its defaults)

            frame = pd.read_csv(path)
            return {str(name): frame[name].tolist() for name in frame.columns}
    except ImportError as e:
        raise BenchmarkError(f"reading {path.name} needs {e.name}: pip install 'finsent-local[eval]'") from None
    except Exception as e:  # a file that is not what its name says
        raise BenchmarkError(f"cannot read the {benchmark.title} set's file {path.name} ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}): its upstream files changed") from None
    raise BenchmarkError(f"the {benchmark.title} set's file {path.name} is neither Parquet nor CSV: its upstream "
                         "files changed")
