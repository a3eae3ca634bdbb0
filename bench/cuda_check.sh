#!/usr/bin/env bash
# One short run on a machine with an NVIDIA GPU (sized for a 15-minute slot): build llama-cpp-python
# with CUDA into .venv when it is not, check that llama.cpp offloads, make the same-shape test model if
# it is missing, then measure the GPU path against the CPU path in the same run (bench/gpu_bench.py:
# engine and server, one text and batched, label agreement). Prints the figures for bench/RESULTS.md.
#   bash bench/cuda_check.sh            (needs nvcc on the PATH and the project's .venv: bash setup.sh --dev)
#   CUDA_CHECK_TESTS=1 bash bench/cuda_check.sh   also runs the engine and server tests on the GPU
#                                                 (their trained fixture takes minutes to build once)
# Offline GPU machines: LLAMA_CPP_SOURCE=/path/to/llama_cpp_python-0.3.36.tar.gz (the PyPI sdist) builds
# from that file instead of downloading it.
#   bash bench/cuda_check.sh --check-imports   only checks, on any machine, that what this script runs
#                                              imports (tests/test_bench_smoke.py runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
# The GPU check, run below after the build; alone (no GPU needed) with --check-imports.
GPU_CHECK='
import sys
from finsent_local.engine.llama_runtime import gpu_layers, gpu_offload_supported
if sys.argv[1:] == ["--check-imports"]:
    print("cuda_check imports: OK")
    raise SystemExit
assert gpu_offload_supported(), "llama.cpp was not built with GPU support"
print("GPU offload: yes; layers requested:", gpu_layers("on"))
'
if [ "${1:-}" = "--check-imports" ]; then
  "$PYTHON" -c "$GPU_CHECK" --check-imports
  # the scripts it runs: each one's imports (FINSENT_BENCH_GPU unset: gpu_bench.py stops before any work)
  "$PYTHON" -c "import sys; sys.path[:0] = ['bench', 'llama_build']; import install, convert_bench, gpu_bench"
  exit 0
fi
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader
# Built for this machine's GPU only: llama.cpp's default list of CUDA architectures compiles every kernel
# several times over (most of the build's minutes). CUDA_ARCHITECTURES="80;90" builds for several cards;
# CUDA_CHECK_CMAKE_ARGS adds to llama.cpp's CMake arguments (-DGGML_CUDA_FA=OFF: no flash-attention kernels,
# two thirds of the CUDA files, for a slot too short for the whole build).
ARCHS="${CUDA_ARCHITECTURES:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')}"
if ! "$PYTHON" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)" 2>/dev/null; then
  # the same-shape model's checkpoint needs no llama.cpp: written while llama.cpp compiles
  [ -f bench/.work/out/ours.gguf ] || "$PYTHON" -c "import sys; sys.path.insert(0, 'bench'); \
from same_shape import same_shape_checkpoint; same_shape_checkpoint()" &
  started=$(date +%s)
  CMAKE_ARGS="-DGGML_CUDA=on -DLLAVA_BUILD=OFF${ARCHS:+ -DCMAKE_CUDA_ARCHITECTURES=$ARCHS}${CUDA_CHECK_CMAKE_ARGS:+ $CUDA_CHECK_CMAKE_ARGS}" "$PYTHON" llama_build/install.py
  echo "llama.cpp with CUDA (architectures: ${ARCHS:-the default list}) built in $(( $(date +%s) - started )) s${CUDA_CHECK_CMAKE_ARGS:+ (with $CUDA_CHECK_CMAKE_ARGS)}"
  wait
fi
"$PYTHON" -c "$GPU_CHECK"
if [ "${CUDA_CHECK_TESTS:-0}" = 1 ]; then
  "$PYTHON" -m pytest -q tests/test_engine.py tests/test_server_api.py tests/test_openai_api.py
fi
[ -f bench/.work/out/ours.gguf ] || "$PYTHON" bench/convert_bench.py
FINSENT_BENCH_GPU=1 "$PYTHON" bench/gpu_bench.py
