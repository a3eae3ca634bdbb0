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
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if ! .venv/bin/python -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)"; then
  CMAKE_ARGS="-DGGML_CUDA=on -DLLAVA_BUILD=OFF" .venv/bin/python llama_build/install.py
fi
.venv/bin/python - <<'PY'
from finsent_local.llama_runtime import gpu_offload_supported
from finsent_local.serve import gpu_layers
assert gpu_offload_supported(), "llama.cpp was not built with GPU support"
print("GPU offload: yes; layers requested:", gpu_layers("on"))
PY
if [ "${CUDA_CHECK_TESTS:-0}" = 1 ]; then
  .venv/bin/python -m pytest -q tests/test_engine.py tests/test_server_api.py tests/test_openai_api.py
fi
[ -f bench/.work/out/ours.gguf ] || .venv/bin/python bench/convert_bench.py
FINSENT_BENCH_GPU=1 .venv/bin/python bench/gpu_bench.py
