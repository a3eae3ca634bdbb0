"""Benchmark: file jobs, on a random model of Llama-FinSent-S's shape (Q4_K_M, padded), in one run.

1. Memory: peak RSS of `finsent classify --input X.csv --output Y.csv` for 1k rows and for 100k rows.
   Both files draw from the same 500 distinct headlines, so both runs classify the same 500 texts with
   the model (each with a fresh result cache) and the 100k run answers its other rows from the cache:
   what grows is the data streamed through the job (reading, saving results, writing), not model work.
   Target: the 100k run's peak within a small margin of the 1k run's.
2. Throughput, 512 distinct headlines (Parquet), no cache, end to end (start-up and model load included):
   the single-machine job (one process, 2 llama.cpp threads), and Ray Data on a local 2-CPU cluster
   with 1 actor x 2 threads and 2 actors x 1 thread. Ray's overhead is its wall time over the
   single process's.

.venv/bin/python bench/file_bench.py      (BENCH_RAY_TEXTS, BENCH_BIG_ROWS to change the sizes; --smoke: the
tests' tiny checkpoint, a few hundred rows, one Ray actor; bench/smoke_mode.py)
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from same_shape import WORK, same_shape_checkpoint
from smoke_mode import pick

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMPANIES = ["Hooli", "Globex", "Initech", "Umbrella", "Acme", "Stark Industries", "Wayne Enterprises", "Cyberdyne",
             "Vandelay", "Soylent", "Tyrell", "Wonka", "Oscorp", "Aperture", "Massive Dynamic", "Pied Piper",
             "Dunder Mifflin", "Sterling Cooper", "Virtucon", "Nakatomi"]
EVENTS = ["raises full-year guidance by {n}%", "files for bankruptcy protection after {n} quarters of losses",
          "schedules its annual general meeting for May {n}", "shares plunge {n}% on fraud probe",
          "profit soars {n}% to a record", "cuts {n} jobs as orders fall", "wins a {n} million dollar contract",
          "misses estimates by {n} cents a share", "keeps its dividend at {n} cents", "opens {n} new stores"]
SMALL_ROWS = pick(1_000, 100)
BIG_ROWS = int(os.environ.get("BENCH_BIG_ROWS", pick(100_000, 1_000)))
RAY_TEXTS = int(os.environ.get("BENCH_RAY_TEXTS", pick(512, 16)))
RAY_LAYOUTS = pick(((1, 2), (2, 1)), ((1, 1),))  # (actors, threads per actor)


def headline(i: int) -> str:
    return f"{COMPANIES[i % len(COMPANIES)]} {EVENTS[(i // len(COMPANIES)) % len(EVENTS)].format(n=i % 97 + 3)}"


def model_file() -> Path:
    path = WORK / "out" / "ours.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "finsent_local.cli", "convert", str(same_shape_checkpoint()),
                        "--outtype", "q4_k_m", "--outfile", str(path), "--no-verify", "-q"], check=True)
    return path


def peak_rss_mb(command: list[str], env: dict) -> tuple[float, float]:
    """(wall s, peak RSS MB) of a command, read by a wrapper process that has it as its only child."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "code = subprocess.run(sys.argv[1:]).returncode; "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, code)")
    out = subprocess.run([sys.executable, "-c", probe, *command], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    wall, rss, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{command} failed: {out.stderr[-2000:]}")
    return float(wall), float(rss)


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "headline", "source"])
        for i in range(rows):
            writer.writerow([i, headline(i % 500), "wire"])


def bench_memory(model: Path, folder: Path) -> None:
    results = {}
    for rows in (SMALL_ROWS, BIG_ROWS):
        source = folder / f"news-{rows}.csv"
        write_csv(source, rows)
        command = [sys.executable, "-m", "finsent_local.cli", "classify", "--model", str(model), "--input", str(source),
                   "--column", "headline", "--output", str(folder / f"scored-{rows}.csv"), "--quiet"]
        results[rows] = peak_rss_mb(command, {"FINSENT_CACHE_DIR": str(folder / f"cache-{rows}")})
        print(f"memory: {rows:>7,} rows  {results[rows][0]:7.1f} s  peak RSS {results[rows][1]:7.1f} MB", flush=True)
    small, big = results[SMALL_ROWS][1], results[BIG_ROWS][1]
    print(f"memory: peak RSS {BIG_ROWS:,} rows / {SMALL_ROWS:,} rows = x{big / small:.3f} (+{big - small:.1f} MB)")


def bench_throughput(model: Path, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    import ray.data

    from finsent_local.jobs.ray_job import classify_dataset, init_ray

    source = folder / "distinct.parquet"
    pq.write_table(pa.table({"id": list(range(RAY_TEXTS)), "headline": [headline(i) for i in range(RAY_TEXTS)]}),
                   source)
    command = [sys.executable, "-m", "finsent_local.cli", "classify", "--model", str(model), "--input", str(source),
               "--column", "headline", "--output", str(folder / "single.parquet"), "--no-cache", "--threads", "2",
               "--quiet"]
    single_s, _ = peak_rss_mb(command, {"FINSENT_CACHE_DIR": str(folder / "cache-single")})
    single_labels = pq.read_table(folder / "single.parquet").column("label").to_pylist()
    rows = [("single process, 2 threads", single_s, True)]

    init_ray("local", num_cpus=2, log_to_driver=False)  # a cluster on 127.0.0.1, as the command starts one
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    try:
        for actors, threads in RAY_LAYOUTS:
            out = folder / f"ray-{actors}x{threads}"
            start = time.perf_counter()
            scored = classify_dataset(ray.data.read_parquet(str(source)), "headline", model=model, scheme="7",
                                      actors=actors, threads_per_actor=threads)
            scored.write_parquet(str(out))
            wall = time.perf_counter() - start
            same = pq.read_table(out).column("label").to_pylist() == single_labels
            rows.append((f"Ray Data, {actors} actor(s) x {threads} thread(s)", wall, same))
    finally:
        ray.shutdown()
    print(f"\nthroughput: {RAY_TEXTS} distinct headlines, end to end (start-up and model load included)")
    print("| path | wall s | texts/s | vs single | labels = single |\n|---|---:|---:|---:|---|")
    for name, wall, same in rows:
        print(f"| {name} | {wall:.1f} | {RAY_TEXTS / wall:.1f} | x{single_s / wall:.2f} | {'yes' if same else 'NO'} |")
    print("Ray overhead (wall over the single process): "
          + ", ".join(f"{name.split(', ')[1]} +{wall - single_s:.1f} s" for name, wall, _ in rows[1:]))


def main() -> None:
    model = model_file()
    print(f"model: {model} ({model.stat().st_size / 1e6:.0f} MB), CPU threads available: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="finsent-file-bench-") as tmp:
        bench_memory(model, Path(tmp))
        bench_throughput(model, Path(tmp))


if __name__ == "__main__":
    main()
