"""Benchmark: `finsent convert --outtype q4_k_m` on a random checkpoint of Llama-FinSent-S's shape.

Prints wall time, peak RSS and file size for:
  ours       finsent convert (MLP padded to 5120), no verification
  unpadded   the same with --no-pad-ffn (what stock llama.cpp does with width 4916)
and, when the llama-cpp-python sdist can be fetched from PyPI, the stock pipeline for the same run:
  stock      llama.cpp's convert_hf_to_gguf.py to F16, then llama.cpp's quantizer to Q4_K_M
with ratios against the stock figures (or `unpadded` where the stock pipeline is not available).
Targets (issue 2): <= 60 s, <= 2 GB peak RSS, <= 630 MB.

Run: .venv/bin/python bench/convert_bench.py      (--smoke: the tests' trained checkpoint, bench/smoke_mode.py)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from same_shape import WORK, same_shape_checkpoint
from smoke_mode import SMOKE

PYTHON = sys.executable


def _measure(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of a child process (each run in a fresh `bash -c` so that
    RUSAGE_CHILDREN reports that run alone)."""
    script = (
        "import resource, subprocess, sys, time; t = time.time(); "
        "rc = subprocess.run(sys.argv[1:]).returncode; wall = time.time() - t; "
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6; "
        "print(f'{wall} {peak}'); sys.exit(rc)"
    )
    out = subprocess.run([PYTHON, "-c", script, *cmd], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    wall, peak = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(peak)


def _stock_converter() -> Path | None:
    sdist_dir = WORK / "sdist"
    script = sdist_dir / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"
    if script.exists():
        return script
    if SMOKE:  # nothing downloaded in a smoke run
        return None
    sdist_dir.mkdir(parents=True, exist_ok=True)
    got = subprocess.run([PYTHON, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q",
                          "llama-cpp-python==0.3.36", "-d", str(sdist_dir)], capture_output=True)
    archives = list(sdist_dir.glob("*.tar.gz"))
    if got.returncode != 0 or not archives:
        return None
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/convert_hf_to_gguf.py" in m.name
                   or "/vendor/llama.cpp/gguf-py/" in m.name or "/vendor/llama.cpp/conversion/" in m.name]
        tar.extractall(sdist_dir, members=members)
    return script if script.exists() else None


def main() -> None:
    checkpoint = same_shape_checkpoint()
    out = WORK / "out"
    out.mkdir(exist_ok=True)
    rows = []
    finsent = [PYTHON, "-m", "finsent_local.cli", "convert", str(checkpoint), "--outtype", "q4_k_m",
               "--no-verify", "--quiet", "--force"]
    wall, peak = _measure(finsent + ["--outfile", str(out / "ours.gguf")])
    rows.append(("ours (padded to 5120)", wall, peak, (out / "ours.gguf").stat().st_size / 1e6))
    wall, peak = _measure(finsent + ["--no-pad-ffn", "--outfile", str(out / "unpadded.gguf")])
    rows.append(("unpadded (4916)", wall, peak, (out / "unpadded.gguf").stat().st_size / 1e6))

    stock = _stock_converter()
    if stock is not None:
        f16 = out / "stock-f16.gguf"
        env = {"PYTHONPATH": str(stock.parent / "gguf-py")}
        wall1, peak1 = _measure([PYTHON, str(stock), str(checkpoint), "--outtype", "f16", "--outfile", str(f16)], env)
        quantize = ("import sys; from finsent_local.engine.llama_runtime import quantize_model; "
                    "quantize_model(sys.argv[1], sys.argv[2], 15, buffer_bytes=0)")  # llama.cpp's defaults
        wall2, peak2 = _measure([PYTHON, "-c", quantize, str(f16), str(out / "stock.gguf")])
        rows.append(("stock llama.cpp (F16 then Q4_K_M)", wall1 + wall2, max(peak1, peak2),
                     (out / "stock.gguf").stat().st_size / 1e6))
        f16.unlink()
    base = rows[-1]
    print(f"\n{'pipeline':36} {'wall s':>8} {'peak GB':>8} {'MB':>8}   ratios vs {base[0]}")
    for name, wall, peak, size in rows:
        print(f"{name:36} {wall:8.1f} {peak:8.2f} {size:8.1f}   time x{wall / base[1]:.2f}  "
              f"rss x{peak / base[2]:.2f}  size x{size / base[3]:.2f}")
    ours = rows[0]
    print(f"\ntargets: time <= 60 s: {'OK' if ours[1] <= 60 else 'MISSED'}; peak RSS <= 2 GB: "
          f"{'OK' if ours[2] <= 2 else 'MISSED'}; size <= 630 MB: {'OK' if ours[3] <= 630 else 'MISSED'}")


if __name__ == "__main__":
    main()
