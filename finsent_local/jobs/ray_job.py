"""The file job on a Ray cluster, with Ray Data (`pip install 'finsent-local[cluster]'`).

Ray reads the input (a Parquet, CSV or JSON Lines file, or a folder of them) in blocks, streams them
through a pool of scoring actors (`map_batches` with FinSentScorer: each actor loads the model once
and runs llama.cpp with as many threads as it has CPUs), and writes the result in the input's format
to an output folder, rows in input order. The actors call the same classification service as the
single-machine job, so a row gets the same label either way.

For your own pipelines: `classify_dataset(ds, "headline", model="/shared/model.gguf")` returns the
dataset with label, score, p_<label> and error columns; with `split="sentences"` each value is a
document (jobs/documents) and the columns are the document job's (label, score, weighted_score, ...).

The model file must be readable at the same path on every node (shared storage), or, without a
model path, each node downloads and converts the default model once into its own cache folder.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import JobError
from .tables import TableError, result_arrays, result_columns

BATCH_ROWS = 128  # rows per actor call: big enough for batched decodes, small enough to spread the work


class FinSentScorer:
    """Ray Data's stateful batch function: one engine per actor, loaded in the constructor."""

    def __init__(self, column: str, scheme: str = "7", model: str | None = None, prefix: str = "",
                 prompt_preset: str = "card", threads: int = 1, split: str | None = None,
                 about: list[str] | None = None):
        import ray

        from ..engine.classifier import EngineOptions
        from ..engine.llama_runtime import gpu_layers
        from ..first_run import ModelUnavailable, ensure_model
        from ..limits import Limits
        from ..engine.service import open_service

        on_gpu = ray.is_initialized() and bool(ray.get_gpu_ids())
        self.failure: ModelUnavailable | None = None
        try:
            path = ensure_model(model)
        except ModelUnavailable as e:
            # Raised with the first batch instead: an actor that dies in its constructor makes Ray
            # print a page of tracebacks on the driver before the job fails; a failed batch does not.
            self.failure = e
            return
        self.service = open_service(path, EngineOptions(prompt_preset=prompt_preset, n_threads=threads,
                                                        n_gpu_layers=gpu_layers("auto" if on_gpu else "off")),
                                    None, Limits(max_wait_s=None))
        self.column = column
        self.scheme = scheme
        if split == "sentences":
            from .documents import DocumentScorer, document_columns

            # Row numbers only name the rows of --sentences-output, which Ray does not write.
            self.score_values = DocumentScorer(self.service, scheme, about, first_row=1)
            self.added_columns = document_columns(prefix)
        else:
            from .scoring import classify_values

            self.score_values = lambda values: classify_values(self.service, values, scheme)
            self.added_columns = result_columns(self.service.schemes[scheme].labels, prefix)

    def __call__(self, batch):
        if self.failure is not None:
            raise self.failure
        results = self.score_values(batch.column(self.column).to_pylist())
        for name, array in zip(self.added_columns, result_arrays(results, self.added_columns)):
            batch = batch.append_column(name, array)
        return batch


class JsonLinesScorer(FinSentScorer):
    """JSON Lines on Ray, read as lines (Ray's JSON reader would type every key by its first block and
    abort the job at one broken line): each line is parsed, scored and written back as the single-
    machine job does it, a line that is not a JSON object kept whole in an error row."""

    def __call__(self, batch):
        import pyarrow as pa

        from .tables import clashing_key, clashing_key_error, read_json_record, record_value, scored_record_line

        if self.failure is not None:
            raise self.failure
        lines = batch.column(LINE_COLUMN).to_pylist()
        records = [read_json_record(line) for line in lines]
        for record in records:
            key = clashing_key(record, self.added_columns)
            if key is not None:
                raise clashing_key_error(key, "a record of the input")
        results = self.score_values([record_value(r, self.column) for r in records])
        scored = [scored_record_line(r, line, self.added_columns, result)
                  for r, line, result in zip(records, lines, results)]
        return pa.table({LINE_COLUMN: pa.array(scored, pa.string())})


LINE_COLUMN = "text"  # the column ray.data.read_text gives each line in


def classify_dataset(ds, column: str, *, model: str | os.PathLike | None = None, scheme: str = "7", prefix: str = "",
                     actors: int = 1, threads_per_actor: int = 1, gpus_per_actor: float = 0.0,
                     prompt_preset: str = "card", batch_rows: int = BATCH_ROWS, json_lines: bool = False,
                     split: str | None = None, about: str | list[str] | None = None):
    """`ds` (a ray.data.Dataset with a text column) with label, score, p_<label> and error columns.

    With `split="sentences"` each value is a document: its sentences are labelled and summed up, and
    the columns are document_columns() (label, score, weighted_score, non_neutral_share, sentences,
    most_positive_sentence, most_negative_sentence, error), as `finsent classify --split sentences`
    writes them; `about` ("Acme|Acme Corp" or a list) keeps only the sentences naming one of them.

    With `json_lines`, `ds` is ray.data.read_text's lines of a JSON Lines input and the result is one
    column of output lines (each record with its result keys), for write_json_lines.
    actors x threads_per_actor CPUs are used; set DataContext's `execution_options.preserve_order`
    to keep the input's row order (the command does)."""
    from ray.data import ActorPoolStrategy

    from .documents import about_names

    if split not in (None, "sentences"):
        raise ValueError(f"split is None or 'sentences', not {split!r}")
    needed = LINE_COLUMN if json_lines else column
    if needed not in ds.columns():
        raise TableError(f"no column {needed!r} in the dataset; its columns: {', '.join(map(repr, ds.columns()))}")
    # Blocks of one batch: a file read as one big block would go to one actor while the others wait;
    # small blocks spread over the pool as it grows (a block costs Ray a few milliseconds; a batch
    # costs the model seconds).
    ds = ds.repartition(target_num_rows_per_block=batch_rows)
    return ds.map_batches(
        JsonLinesScorer if json_lines else FinSentScorer,
        fn_constructor_kwargs={"column": column, "scheme": scheme, "model": None if model is None else str(model),
                               "prefix": prefix, "prompt_preset": prompt_preset, "threads": threads_per_actor,
                               "split": split, "about": about_names(about) or None},
        batch_size=batch_rows, batch_format="pyarrow", num_cpus=_actor_cpu_request(threads_per_actor, actors),
        num_gpus=gpus_per_actor or None, compute=ActorPoolStrategy(size=actors),
    )


def _actor_cpu_request(threads: int, actors: int) -> float:
    """The CPUs each actor asks Ray for: its llama.cpp threads, unless the pool would then hold every
    CPU of the cluster. Ray Data's file listing task needs a CPU before any block reaches an actor, so
    a pool that took them all would wait forever (1 actor x 2 threads on a 2-CPU machine); there the
    requests shrink to leave one CPU, and each actor still runs its threads."""
    import ray

    cluster_cpus = ray.cluster_resources().get("CPU", 0)
    wanted = threads * actors
    if wanted < cluster_cpus:
        return float(threads)
    return threads * max(0.0, cluster_cpus - 1) / wanted


# -- the command ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RayJob:
    input_path: Path
    output_path: Path
    column: str | None
    scheme: str = "7"
    prefix: str = ""
    prompt_preset: str = "card"
    threads: int = 0
    actors: int | None = None
    gpus_per_actor: float = 0.0
    force: bool = False
    model: str | None = None
    quiet: bool = False
    encoding: str | None = None  # CSV: None detects (UTF-8, else Windows-1252), as the single-machine job
    delimiter: str | None = None  # CSV: None is ',' (';' when the header has only semicolons)
    split: str | None = None  # "sentences": each value is a document
    about: str | None = None  # with split: NAME|ALIAS...


READERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json"}


def input_files(path: Path) -> list[Path]:
    """The input's data files: the file itself, or those in the folder (and below) by extension."""
    path = Path(path)
    if path.is_dir():
        if unfinished_output(path):
            raise TableError(f"{path} is the output of a `finsent classify --ray` job that did not finish (no "
                             f"{SUCCESS_NAME} in it): run that job again before reading it")
        return sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in READERS
                      and not f.name.startswith((".", "_")))
    return [path]


def input_kind(path: Path) -> str:
    """parquet, csv or json: by the file's extension, or, for a folder, by the files in it."""
    path = Path(path)
    if path.is_dir():
        kinds = {READERS[f.suffix.lower()] for f in input_files(path)}
        if len(kinds) != 1:
            raise TableError(f"{path} should hold files of one kind: .parquet, .csv or .jsonl"
                             + (f" (found {', '.join(sorted(kinds))})" if kinds else ""))
        return kinds.pop()
    if not path.exists():
        raise TableError(f"input not found: {path}")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise TableError(f"with --ray the input is .parquet, .csv or .jsonl files (or a folder of them), not {path.name}")
    return kind


# Reading and writing are light next to scoring and would starve once the actors hold every CPU of
# the cluster: they take no CPU reservation (they still run, and Ray Data's backpressure paces them).
IO_CPUS = 0


@dataclass(frozen=True)
class CsvLayout:
    """How the CSV files are read: every column as text (as the single-machine job: "007" stays "007",
    dates stay as written), in the detected or given encoding and delimiter."""

    columns: tuple[str, ...]
    encoding: str
    delimiter: str
    notes: tuple[str, ...]


def csv_layout(files: list[Path], column: str | None, encoding: str | None, delimiter: str | None) -> CsvLayout:
    """Each file's header, encoding and delimiter, read on the driver as the single-machine job reads
    them (one quick pass per file, no model): the union of the headers becomes the text columns."""
    from .tables import DelimitedTable

    names: dict[str, None] = {}
    tables = [DelimitedTable(f, column, "CSV", delimiter, encoding) for f in files]
    for table in tables:
        names.update(dict.fromkeys(table.header))
    first = tables[0]
    if len({(t.encoding.replace("utf-8-sig", "utf-8"), t.delimiter) for t in tables}) > 1:
        raise TableError("the CSV files differ in encoding or delimiter; give --encoding and --delimiter")
    notes = tuple(dict.fromkeys(note.replace(t.path.name, "the input's CSV files") if len(tables) > 1 else note
                                for t in tables for note in t.notes))
    return CsvLayout(tuple(names), first.encoding, first.delimiter, notes)


def _read(ray_data, path: Path, kind: str, layout: CsvLayout | None):
    if kind == "parquet":
        return ray_data.read_parquet(str(path), num_cpus=IO_CPUS)
    if kind == "csv":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        return ray_data.read_csv(
            str(path), num_cpus=IO_CPUS, file_extensions=["csv"],
            convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in layout.columns},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
            parse_options=pacsv.ParseOptions(delimiter=layout.delimiter, newlines_in_values=True),
            read_options=pacsv.ReadOptions(use_threads=False, encoding=layout.encoding.replace("-sig", "")))
    # JSON Lines as lines: parsed by the scorer, so no type is inferred and a broken line is one error row
    return ray_data.read_datasource(_json_lines_source(path), num_cpus=IO_CPUS)


def _json_lines_source(path: Path):
    """Each line of the JSON Lines files as text, split as the single-machine job splits them
    (tables.split_json_lines). Not ray.data.read_text: it splits with str.splitlines, which also breaks at a
    lone CR, U+2028, U+2029 and U+0085, characters a JSON string may hold as they are."""
    from ray.data.datasource import FileBasedDatasource

    class JsonLinesAsText(FileBasedDatasource):
        def _read_stream(self, f, file_path: str):
            import pyarrow as pa

            from .tables import split_json_lines

            for texts in split_json_lines(f, Path(file_path).name):
                if texts:
                    yield pa.table({LINE_COLUMN: pa.array(texts, pa.string())})

    return JsonLinesAsText(str(path), file_extensions=["jsonl"])


def _write(ds, path: Path, kind: str, layout: CsvLayout | None) -> None:
    io = {"ray_remote_args": {"num_cpus": IO_CPUS}}
    if kind == "parquet":
        ds.write_parquet(str(path), **io)
    elif kind == "csv":
        import pyarrow.csv as pacsv

        ds.write_csv(str(path), arrow_csv_args_fn=lambda: {"write_options": pacsv.WriteOptions(
            delimiter=layout.delimiter)}, **io)
    else:
        ds.write_datasink(_json_lines_sink(path), **io)


def _json_lines_sink(path: Path):
    """Writes the scorer's output lines as they are (UTF-8, one record a line, files named .jsonl)."""
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonLinesSink(BlockBasedFileDatasink):
        def write_block_to_file(self, block, file) -> None:
            for line in block.to_arrow().column(LINE_COLUMN).to_pylist():
                file.write((line + "\n").encode("utf-8"))

    return JsonLinesSink(str(path), file_format="jsonl")


# -- the output folder --------------------------------------------------------------------------------------
MANIFEST_NAME = ".finsent-ray-output.json"
# Written last, after every block: the mark a reader (Spark, Hadoop tools, `finsent classify --ray` itself)
# takes for "this folder is whole". A failed or interrupted job leaves its files without it.
SUCCESS_NAME = "_SUCCESS"


def check_output_place(input_path: Path, output: Path, force: bool, model: str | None = None) -> None:
    """Refuse an output that would touch the input (or the model file), or a folder finsent did not make
    (output_place's rules). Nothing is deleted here: only files an earlier --ray run recorded in the
    folder's manifest ever are."""
    from ..output_place import FolderOutput, OutputRefused, check_outputs, local_model_file, made_by_manifest

    try:
        check_outputs([FolderOutput(output, "--output", "finsent classify --ray",
                                    made_by_manifest(MANIFEST_NAME, _listed_files))],
                      [input_path, local_model_file(model)], force)
    except OutputRefused as e:
        raise TableError(str(e)) from None


def _listed_files(manifest: dict) -> list[str]:
    files = manifest.get("files")
    return [name for name in files if isinstance(name, str)] if isinstance(files, list) else []


def _recorded(folder: Path) -> set[str]:
    from ..output_place import made_by_manifest

    return (made_by_manifest(MANIFEST_NAME, _listed_files)(folder) or set()) - {MANIFEST_NAME}


def unfinished_output(folder: Path) -> bool:
    """Whether `folder` is the output of a --ray job that failed or was interrupted: its manifest says
    unfinished (or there is no _SUCCESS mark beside it)."""
    import json

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # not ours: nothing to say about it
    return not (isinstance(manifest, dict) and manifest.get("finished") is True and (folder / SUCCESS_NAME).is_file())


def claim_output_folder(output: Path) -> None:
    """Empty the folder of an earlier run's files (only those its manifest names) or create it, and
    mark it as ours, unfinished, before anything is written into it."""
    output = Path(output)
    if (output / MANIFEST_NAME).is_file():
        for name in _recorded(output):
            (output / name).unlink(missing_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    _write_manifest(output, files=[], finished=False)


def _write_manifest(output: Path, files: list[str], finished: bool) -> None:
    from ..files import write_json_atomically

    write_json_atomically(output / MANIFEST_NAME, {"written_by": "finsent classify --ray", "finished": finished,
                                                   "files": files})


def record_output_files(output: Path) -> list[Path]:
    """Name every file in the folder in the manifest, still unfinished (a rerun with --force deletes
    exactly these, also after a failure half-way), and return them."""
    files = sorted(p for p in Path(output).iterdir() if p.is_file() and p.name not in (MANIFEST_NAME, SUCCESS_NAME))
    _write_manifest(Path(output), [p.name for p in files], finished=False)
    return files


def mark_output_finished(output: Path, files: list[Path]) -> None:
    """After the last block is written: the _SUCCESS mark, then the manifest says finished."""
    from ..files import fsync_folder, write_text_atomically

    write_text_atomically(Path(output) / SUCCESS_NAME, "", mode=0o644)
    _write_manifest(Path(output), [p.name for p in files] + [SUCCESS_NAME], finished=True)
    fsync_folder(Path(output))


def plan_resources(cluster_cpus: int, threads: int, actors: int | None) -> tuple[int, int]:
    """(actors, threads per actor): by default one thread per actor and an actor per CPU; with only
    --actors, the CPUs shared among them; with only --threads, as many actors as fit."""
    if actors and threads:
        return actors, threads
    if actors:
        return actors, max(1, cluster_cpus // actors)
    threads = threads or 1
    return max(1, cluster_cpus // threads), threads


def run_ray_job(job: RayJob, address: str, say: Callable[[str], None] = print) -> list[Path]:
    """Run the job; the files written. `address`: "" for $RAY_ADDRESS or a new local
    cluster on 127.0.0.1, "local" for a new local cluster, "auto" for the running cluster on this
    machine, or a cluster address."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise TableError("--ray needs Ray Data: pip install 'finsent-local[cluster]' (or 'ray[data]')")
    kind = input_kind(job.input_path)
    output = Path(job.output_path)
    check_output_place(job.input_path, output, job.force, job.model)
    layout = None
    if kind == "csv":
        layout = csv_layout(input_files(job.input_path), job.column, job.encoding, job.delimiter)
        for note in layout.notes:
            say(note)
    elif job.encoding is not None or job.delimiter is not None:
        raise TableError("--encoding and --delimiter are for .csv input")
    elif kind == "json":
        _check_json_lines_column(input_files(job.input_path), job.column)
    if job.model is None:  # resolve (download and convert) on the driver first, so a broken set-up fails here
        from ..first_run import ensure_model

        ensure_model(None, say=say)
    elif "://" not in job.model and not Path(job.model).expanduser().is_file():
        say(f"note: {job.model} is not on this machine; the actors look for it on their nodes")

    # The actors' own output (llama.cpp, tracebacks) and Ray's error reports stay in Ray's log files
    # (/tmp/ray/session_latest/logs): a failed job ends in one line from us.
    init_ray(address, log_to_driver=False, logging_level=logging.CRITICAL)
    import ray
    import ray.data

    for name in ("ray", "ray.data"):  # Ray Data sets its own level; its progress bars (a terminal) still show
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return _run_on_cluster(ray, job, kind, layout, output, say)
    finally:
        ray.shutdown()


def _check_json_lines_column(files: list[Path], column: str | None) -> None:
    """The column is looked for in the first record, as the single-machine job does."""
    from .tables import JsonLinesTable

    for f in files:
        if f.stat().st_size:
            JsonLinesTable(f, column)
            return


LOOPBACK = "127.0.0.1"
# Ray (2.5x on Linux) turns a loopback node address into the machine's network address, and then its
# servers listen on every interface, unless this variable, read when Ray is imported, is "0".
RAY_LOCALHOST_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayNotOnLoopback(JobError):
    """A cluster started for this machine only is reachable from the network."""


def init_ray(address: str | None, **options) -> None:
    """Connect to the cluster at `address` (else $RAY_ADDRESS) as given, or start a local one that
    listens on 127.0.0.1 only: an unauthenticated Ray head reachable from the network runs anyone's
    code (CVE-2023-48022), and someone who only wanted to score a file on a laptop must not open that
    door. `address`: None or "" ($RAY_ADDRESS, else local), "local", "auto" (the cluster `ray start`
    runs on this machine), or "HOST:PORT" / "ray://...". Call it before importing ray, where possible."""
    given = address or os.environ.get("RAY_ADDRESS") or "local"
    local = given == "local"
    if local or _is_loopback_address(given):
        _keep_ray_on_loopback()
    import ray

    if not local:
        ray.init(address=given, ignore_reinit_error=True, **options)
        return
    options.setdefault("include_dashboard", False)
    ray.init(address="local", _node_ip_address=LOOPBACK, ignore_reinit_error=True, **options)
    where = {node["NodeManagerAddress"] for node in ray.nodes()}
    if where != {LOOPBACK}:  # a Ray release that binds otherwise: stop rather than serve the network
        ray.shutdown()
        raise RayNotOnLoopback(f"Ray started its local cluster on {', '.join(sorted(where))}, not {LOOPBACK}; "
                               "start a cluster yourself (ray start --head --node-ip-address 127.0.0.1) and pass "
                               "its address to --ray")


def _keep_ray_on_loopback() -> None:
    import sys

    os.environ[RAY_LOCALHOST_ENV] = "0"  # for this process's Ray and every Ray process it starts
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:  # ray was imported before us (a notebook): its constant is already read
        constants.ENABLE_RAY_CLUSTER = False


def _is_loopback_address(address: str) -> bool:
    import ipaddress

    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run_on_cluster(ray, job: RayJob, kind: str, layout: CsvLayout | None, output: Path,
                    say: Callable[[str], None]) -> list[Path]:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = not job.quiet
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors, threads = plan_resources(cpus, job.threads, job.actors)
    say(f"Ray: {actors} actor(s) x {threads} thread(s), {cpus} CPUs in the cluster")
    ds = _read(ray.data, Path(job.input_path), kind, layout)
    if not job.column:
        columns = layout.columns if layout else ds.columns()
        raise TableError(f"--column is needed: which column holds the texts? Its columns: "
                         f"{', '.join(map(repr, columns))}")
    if layout is not None and job.column not in layout.columns:
        raise TableError(f"no column {job.column!r} in the dataset; its columns: {', '.join(map(repr, layout.columns))}")
    scored = classify_dataset(ds, job.column, model=job.model, scheme=job.scheme, prefix=job.prefix,
                              actors=actors, threads_per_actor=threads, gpus_per_actor=job.gpus_per_actor,
                              prompt_preset=job.prompt_preset, json_lines=kind == "json", split=job.split,
                              about=job.about)
    claim_output_folder(output)
    try:
        _write(scored, output, kind, layout)
    except Exception as e:
        raise RayJobFailed(f"{_root_cause(e)} (details in Ray's logs: /tmp/ray/session_latest/logs on each node)") \
            from None
    finally:  # whatever happened, the manifest names what was written (for --force), still unfinished
        files = record_output_files(output)
    mark_output_finished(output, files)  # only now: every block is on disk
    return files


class RayJobFailed(JobError):
    """The job failed on the cluster (its root cause in one line)."""


def _root_cause(error: BaseException) -> str:
    """One line from a Ray failure: the message of the first error raised by our own code (a model
    file missing on a node...), else the innermost error's first line."""
    from ..first_run import ModelUnavailable

    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain and len(chain) < 20:
        chain.append(seen)
        cause = getattr(seen, "cause", None)  # a RayTaskError keeps the task's own exception here
        seen = cause if isinstance(cause, BaseException) else (seen.__cause__ or seen.__context__)
    for item in chain:
        for known in (ModelUnavailable, TableError):
            if isinstance(item, known):
                return f"the Ray job failed: {str(item).splitlines()[0]}"
    # Ray Data's UserCodeException carries the task's own error only as text (its traceback).
    for item in chain:
        found = _OUR_ERROR_LINE.search(str(item))
        if found:
            return f"the Ray job failed: {found.group(1)}"
    last = chain[-1]
    text = str(last).strip().splitlines()
    return f"the Ray job failed: {type(last).__name__}: {text[-1] if text else ''}"


_OUR_ERROR_LINE = re.compile(r"^\s*finsent_local\.[\w.]+\.(?:ModelUnavailable|TableError): (.+)$", re.MULTILINE)
