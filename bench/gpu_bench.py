"""Benchmark: the GPU path against the CPU path in one run (issue 10, section 4), same file and texts.

  engine   one text per call, and all texts in one call: CPU (no offload) vs GPU (all layers offloaded),
           plus the share of texts whose labels agree (they may differ only on near-ties)
  server   `finsent serve --gpu off` vs `--gpu on`: one text per request (sequential), and 48 texts per
           request, through the real HTTP server

Needs llama-cpp-python built with CUDA (bench/cuda_check.sh builds it). FINSENT_BENCH_GPU=dry runs the
script on a CPU-only build (both sides on the CPU: a check of the script itself, not a measurement).

Run after bench/convert_bench.py: FINSENT_BENCH_GPU=1 .venv/bin/python bench/gpu_bench.py
(--smoke: the tests' trained checkpoint and a few texts, bench/smoke_mode.py; with FINSENT_BENCH_GPU=dry, the
tests' check of this script)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_bench import model_file  # noqa: E402  (puts tests/ on the path, through same_shape)
from running_server import RunningServer  # noqa: E402  (tests/running_server.py: no test set-up)
from load_mix import post_json  # noqa: E402
from smoke_mode import pick  # noqa: E402
from finsent_local.convert.verify import LABEL_SENTENCES  # noqa: E402
from finsent_local.engine.classifier import ClassifierEngine, EngineOptions  # noqa: E402
from finsent_local.engine.llama_runtime import gpu_offload_supported  # noqa: E402

MODE = os.environ.get("FINSENT_BENCH_GPU", "")
TEXTS = list(LABEL_SENTENCES) + [f"{s[:-1]} in the third quarter." for s in LABEL_SENTENCES]  # 40
TEXTS = pick(TEXTS, TEXTS[:4])
BATCH_REQUEST = (TEXTS * 2)[:pick(48, 6)]


def bench_engine(path: Path, gpu_layers: int) -> tuple[float, float, list[str], str]:
    engine = ClassifierEngine(path, EngineOptions(n_gpu_layers=gpu_layers))
    try:
        engine.classify_batch(TEXTS[:2], "7")  # warm-up (and CUDA's first-use set-up)
        start = time.perf_counter()
        labels = [engine.classify_batch([text], "7")[0].label for text in TEXTS]
        single = (time.perf_counter() - start) / len(TEXTS)
        start = time.perf_counter()
        engine.classify_batch(TEXTS, "7")
        batched = (time.perf_counter() - start) / len(TEXTS)
        return single, batched, labels, engine.backend
    finally:
        engine.close()


def _post(url: str, body: dict) -> dict:
    return post_json(url + "/v1/classify", body, timeout_s=300)


def bench_server(path: Path, gpu: str) -> tuple[float, float]:
    """(seconds per single-text request, seconds per text in 48-text requests), no result cache."""
    server = RunningServer("--model", str(path), "--gpu", gpu, "--no-cache", "--log-level", "warning")
    url = server.url
    try:
        _post(url, {"texts": TEXTS[:2]})  # warm-up
        start = time.perf_counter()
        for i, text in enumerate(TEXTS):
            _post(url, {"text": f"{text} ({i})"})  # distinct texts: nothing is served from memory
        single = (time.perf_counter() - start) / len(TEXTS)
        start = time.perf_counter()
        for round_ in range(2):
            _post(url, {"texts": [f"{t} [{round_}]" for t in BATCH_REQUEST]})
        batched = (time.perf_counter() - start) / (2 * len(BATCH_REQUEST))
        return single, batched
    finally:
        server.stop()


def main() -> None:
    if not MODE:
        raise SystemExit("set FINSENT_BENCH_GPU=1 (or =dry to check the script on a CPU-only build)")
    if MODE != "dry" and not gpu_offload_supported():
        raise SystemExit("llama.cpp was built without GPU offload: run bench/cuda_check.sh, or FINSENT_BENCH_GPU=dry")
    path = model_file()
    cpu = bench_engine(path, 0)
    gpu = bench_engine(path, -1)
    agree = sum(a == b for a, b in zip(cpu[2], gpu[2])) / len(TEXTS)
    server_cpu = bench_server(path, "off")
    server_gpu = bench_server(path, "on" if MODE != "dry" else "auto")
    print(f"\nmodel: {path.name} ({path.stat().st_size / 1e6:.0f} MB); GPU side backend: {gpu[3]}"
          + ("  (dry run: no GPU, both sides on the CPU)" if MODE == "dry" else ""))
    print(f"{'path':44} {'CPU ms/text':>12} {'GPU ms/text':>12} {'GPU speed-up':>13}")
    for name, c, g in (("engine, 1 text per call", cpu[0], gpu[0]),
                       (f"engine, {len(TEXTS)} texts in one call", cpu[1], gpu[1]),
                       ("server, 1 text per request", server_cpu[0], server_gpu[0]),
                       (f"server, {len(BATCH_REQUEST)} texts per request", server_cpu[1], server_gpu[1])):
        print(f"{name:44} {c * 1000:12.1f} {g * 1000:12.1f} {c / g:12.2f}x")
    print(f"labels equal on CPU and GPU: {agree:.0%} of {len(TEXTS)} texts (random weights: near-ties may differ)")


if __name__ == "__main__":
    main()
