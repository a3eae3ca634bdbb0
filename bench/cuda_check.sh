#!/usr/bin/env bash
# One short run on a machine with an NVIDIA GPU: build llama-cpp-python with CUDA into .venv, check
# that llama.cpp sees the GPU, run the server and engine tests (the server offloads all layers with
# --gpu auto), then the engine benchmark. Prints the figures to record in bench/RESULTS.md.
#   bash bench/cuda_check.sh            (needs nvcc on the PATH and the project's .venv: bash setup.sh --dev)
# Offline GPU machines: LLAMA_CPP_SOURCE=/path/to/llama_cpp_python-0.3.36.tar.gz (the PyPI sdist) builds
# from that file instead of downloading it.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if ! .venv/bin/python -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)"; then
  CMAKE_ARGS="-DGGML_CUDA=on -DLLAVA_BUILD=OFF" .venv/bin/pip install -q --force-reinstall --no-deps --no-cache-dir \
    "${LLAMA_CPP_SOURCE:-llama-cpp-python==0.3.36}"
fi
.venv/bin/python - <<'PY'
from finsent_local.llama_runtime import gpu_offload_supported
from finsent_local.serve import gpu_layers
assert gpu_offload_supported(), "llama.cpp was not built with GPU support"
print("GPU offload: yes; layers requested:", gpu_layers("on"))
PY
.venv/bin/python -m pytest -q tests/test_engine.py tests/test_server_api.py tests/test_openai_api.py
if [ -f bench/.work/out/ours.gguf ] || .venv/bin/python bench/convert_bench.py; then
  FINSENT_BENCH_GPU=1 .venv/bin/python bench/engine_bench.py
fi
