"""Benchmark: `finsent eval --benchmark fpb` over FPB's full test size (1,212 rows of 4,846) with a random
model of Llama-FinSent-S's shape (Q4_K_M): time and peak memory of the whole command.

The set is tests/benchmark_sets.py's stand-in of takala/financial_phrasebank (the hub's Parquet conversion:
same file, columns and label numbering, synthetic headlines), served by tests/hub_stand_in.py on loopback,
so the path is the real one: huggingface-hub download into a fresh hub cache, read, split, 1,212 texts
classified, metrics with bootstrap intervals, JSON written. Figures for the real model on the real sets are
for users to produce (README, "Benchmarks"). The result cache is off (--no-cache): every text is classified.

.venv/bin/python bench/benchmark_eval.py   (--smoke: the tests' trained checkpoint and 160 rows; bench/smoke_mode.py)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from same_shape import WORK, same_shape_checkpoint
from smoke_mode import pick

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from benchmark_sets import fpb_files  # noqa: E402
from hub_stand_in import HubStandIn  # noqa: E402

FPB_ROWS = pick(4846, 160)  # sentences_50agree: the test part is ceil(0.25 * rows) = 1,212


def model_file() -> Path:
    """The same-shape Q4_K_M file (bench/convert_bench.py's, or converted here once)."""
    path = WORK / "out" / "ours.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "finsent_local.cli", "convert", str(same_shape_checkpoint()),
                        "--outtype", "q4_k_m", "--outfile", str(path), "--no-verify", "-q"], check=True)
    return path


def run_measured(command: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS in MB of the command itself, its result)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    return wall, usage.ru_maxrss / 1024, subprocess.CompletedProcess(command, proc.returncode, out, err)


def main() -> None:
    model = model_file()
    with tempfile.TemporaryDirectory(prefix="finsent-benchmark-eval-") as tmp, HubStandIn() as hub:
        hub.add_dataset("takala/financial_phrasebank", fpb_files(FPB_ROWS), revision="refs/convert/parquet")
        env = {**os.environ, **hub.env(Path(tmp) / "hf"), "FINSENT_CACHE_DIR": str(Path(tmp) / "cache")}
        figures = Path(tmp) / "fpb.json"
        command = [sys.executable, "-m", "finsent_local.cli", "eval", "--benchmark", "fpb", "--model", str(model),
                   "--json", str(figures), "--no-cache", "-q"]
        wall, peak_mb, proc = run_measured(command, env)
        if proc.returncode != 0:
            raise SystemExit(f"finsent eval --benchmark fpb failed:\n{proc.stderr[-3000:]}")
        result = json.loads(figures.read_text())["benchmarks"][0]
        measured = result["measured"]["models"][0]
        rows = result["rows"]
        print(f"model: {model.name} ({model.stat().st_size / 1e6:.0f} MB), {os.cpu_count()} CPU cores")
        print(f"benchmark eval: FPB test {rows:,} rows of {result['source']['rows_before_split']:,}: "
              f"{wall:.1f} s wall for the whole command, classification {measured['texts_per_s']:.2f} texts/s, "
              f"peak RSS {peak_mb:,.0f} MB")
        print(f"(random weights: weighted F1 {measured['weighted_f1']:.3f} means nothing)")


if __name__ == "__main__":
    main()
