"""llama-cpp-python, imported in one place (llama_runtime, cpu_buffers): `from .llama_library import llama_cpp`.

Why not a plain `import llama_cpp`: on the first CUDA run (bench/RESULTS.md, "CUDA check": H200, CUDA 13.0,
GCC 13.3, llama-cpp-python 0.3.36 built by bench/cuda_check.sh) every model load through the engine
segfaulted in llama.cpp's own `llama_model::print_info`. libggml-cuda.so carries weak copies of libstdc++'s
stream templates, and when libstdc++ was not yet in the process's global symbol scope, libllama bound its
`std::ostream` calls to those copies, which crash in the locale code. Whether it happens depended on which
modules were imported first (`import torch` first did it too). Loading libstdc++ globally before
llama.cpp's libraries makes those calls bind to libstdc++ itself: the same loads then ran, on the CPU and
the GPU. Harmless on CPU builds (the library is loaded anyway, by llama.cpp's C++ code).
"""

from __future__ import annotations

import ctypes
import sys

CXX_RUNTIME = "libstdc++.so.6"


def _load_cxx_runtime_globally() -> None:
    if not sys.platform.startswith("linux"):
        return  # macOS and Windows resolve each library's C++ runtime by name, not through one global scope
    try:
        ctypes.CDLL(CXX_RUNTIME, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        pass  # no GNU C++ runtime by that name (a musl or libc++ system): nothing to bind to


_load_cxx_runtime_globally()

import llama_cpp  # noqa: E402  (after the C++ runtime, on purpose)

__all__ = ["llama_cpp"]
