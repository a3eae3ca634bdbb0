"""The file job on a Ray cluster, with Ray Data (`pip install 'finsent-local[cluster]'`).

Ray reads the input (a Parquet, CSV or JSON Lines file, or a folder of them) in blocks, streams them
through a pool of scoring actors (`map_batches` with FinSentScorer: each actor loads the model once
and runs llama.cpp with as many threads as it has CPUs), and writes the result in the input's format
to an output folder, rows in input order. The actors call the same classification service as the
single-machine job, so a row gets the same label either way.

For your own pipelines: `classify_dataset(ds, "headline", model="/shared/model.gguf")` returns the
dataset with label, score, p_<label> and error columns.

The model file must be readable at the same path on every node (shared storage), or, without a
model path, each node downloads and converts the default model once into its own cache folder.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .tables import TableError, result_arrays, result_columns

BATCH_ROWS = 128  # rows per actor call: big enough for batched decodes, small enough to spread the work


class FinSentScorer:
    """Ray Data's stateful batch function: one engine per actor, loaded in the constructor."""

    def __init__(self, column: str, scheme: str = "7", model: str | None = None, prefix: str = "",
                 prompt_preset: str = "card", threads: int = 1):
        import ray

        from .engine import EngineOptions
        from .first_run import ModelUnavailable, ensure_model
        from .limits import Limits
        from .service import open_service

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
                                                        n_gpu_layers=-1 if on_gpu else 0),
                                    None, Limits(max_wait_s=None))
        self.column = column
        self.scheme = scheme
        labels = self.service.schemes[scheme].labels
        self.added_columns = result_columns(labels, prefix)

    def __call__(self, batch):
        from .scoring import classify_values

        if self.failure is not None:
            raise self.failure
        results = classify_values(self.service, batch.column(self.column).to_pylist(), self.scheme)
        for name, array in zip(self.added_columns, result_arrays(results, self.added_columns)):
            batch = batch.append_column(name, array)
        return batch


def classify_dataset(ds, column: str, *, model: str | os.PathLike | None = None, scheme: str = "7", prefix: str = "",
                     actors: int = 1, threads_per_actor: int = 1, gpus_per_actor: float = 0.0,
                     prompt_preset: str = "card", batch_rows: int = BATCH_ROWS):
    """`ds` (a ray.data.Dataset with a text column) with label, score, p_<label> and error columns.

    actors x threads_per_actor CPUs are used; set DataContext's `execution_options.preserve_order`
    to keep the input's row order (the command does)."""
    from ray.data import ActorPoolStrategy

    if column not in ds.columns():
        raise TableError(f"no column {column!r} in the dataset; its columns: {', '.join(map(repr, ds.columns()))}")
    # Blocks of one batch: a file read as one big block would go to one actor while the others wait;
    # small blocks spread over the pool as it grows (a block costs Ray a few milliseconds; a batch
    # costs the model seconds).
    ds = ds.repartition(target_num_rows_per_block=batch_rows)
    return ds.map_batches(
        FinSentScorer,
        fn_constructor_kwargs={"column": column, "scheme": scheme, "model": None if model is None else str(model),
                               "prefix": prefix, "prompt_preset": prompt_preset, "threads": threads_per_actor},
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


READERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json"}


def input_kind(path: Path) -> str:
    """parquet, csv or json: by the file's extension, or, for a folder, by the files in it."""
    path = Path(path)
    if path.is_dir():
        kinds = {READERS[f.suffix.lower()] for f in path.rglob("*") if f.is_file() and f.suffix.lower() in READERS}
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


def _read(ray_data, path: Path, kind: str):
    if kind == "parquet":
        return ray_data.read_parquet(str(path), num_cpus=IO_CPUS)
    if kind == "csv":
        import pyarrow.csv as pacsv

        # Every CSV column stays text, as in the single-machine job (no "007" turned into 7).
        return ray_data.read_csv(str(path), num_cpus=IO_CPUS, convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
                                 parse_options=pacsv.ParseOptions(newlines_in_values=True),
                                 read_options=pacsv.ReadOptions(use_threads=False))
    return ray_data.read_json(str(path), lines=True, num_cpus=IO_CPUS)


def _write(ds, path: Path, kind: str) -> None:
    io = {"ray_remote_args": {"num_cpus": IO_CPUS}}
    if kind == "parquet":
        ds.write_parquet(str(path), **io)
    elif kind == "csv":
        ds.write_csv(str(path), **io)
    else:
        ds.write_json(str(path), **io)


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
    cluster, "auto" for the running cluster on this machine, or a cluster address."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise TableError("--ray needs Ray Data: pip install 'finsent-local[cluster]' (or 'ray[data]')") from None
    kind = input_kind(job.input_path)
    output = Path(job.output_path)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not job.force:
        raise TableError(f"{output} exists; use --force to replace it (the output of --ray is a folder)")
    if job.model is None:  # resolve (download and convert) on the driver first, so a broken set-up fails here
        from .first_run import ensure_model

        ensure_model(None, say=say)
    elif "://" not in job.model and not Path(job.model).expanduser().is_file():
        say(f"note: {job.model} is not on this machine; the actors look for it on their nodes")

    # The actors' own output (llama.cpp, tracebacks) and Ray's error reports stay in Ray's log files
    # (/tmp/ray/session_latest/logs): a failed job ends in one line from us.
    ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.CRITICAL)
    for name in ("ray", "ray.data"):  # Ray Data sets its own level; its progress bars (a terminal) still show
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return _run_on_cluster(ray, job, kind, output, say)
    finally:
        ray.shutdown()


def _run_on_cluster(ray, job: RayJob, kind: str, output: Path, say: Callable[[str], None]) -> list[Path]:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = not job.quiet
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors, threads = plan_resources(cpus, job.threads, job.actors)
    say(f"Ray: {actors} actor(s) x {threads} thread(s), {cpus} CPUs in the cluster")
    ds = _read(ray.data, Path(job.input_path), kind)
    if not job.column:
        raise TableError(f"--column is needed: which column holds the texts? Its columns: "
                         f"{', '.join(map(repr, ds.columns()))}")
    scored = classify_dataset(ds, job.column, model=job.model, scheme=job.scheme, prefix=job.prefix,
                              actors=actors, threads_per_actor=threads, gpus_per_actor=job.gpus_per_actor,
                              prompt_preset=job.prompt_preset)
    if output.exists() and job.force:
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    try:
        _write(scored, output, kind)
    except Exception as e:
        raise RayJobFailed(f"{_root_cause(e)} (details in Ray's logs: /tmp/ray/session_latest/logs on each node)") \
            from None
    return sorted(p for p in output.rglob("*") if p.is_file())


class RayJobFailed(TableError):
    pass


def _root_cause(error: BaseException) -> str:
    """One line from a Ray failure: the message of the first error raised by our own code (a model
    file missing on a node...), else the innermost error's first line."""
    from .first_run import ModelUnavailable

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
