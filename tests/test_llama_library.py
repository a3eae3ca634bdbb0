"""finsent_local/engine/llama_library.py: llama.cpp's libraries load after the C++ runtime is in the
process's global symbol scope (the first CUDA run segfaulted in llama_model::print_info without it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# std::ostream::_M_insert<long>, the libstdc++ function the CUDA build's crash went through
OSTREAM_INSERT_LONG = "_ZNSo9_M_insertIlEERSoT_"
GLOBAL_SYMBOL = (
    "import ctypes; print(hasattr(ctypes.CDLL(None), '" + OSTREAM_INSERT_LONG + "'))"
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the global symbol scope is Linux's")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_engine_binds_llama_cpp_to_the_global_cxx_runtime():
    assert _run("import finsent_local.engine.llama_runtime; " + GLOBAL_SYMBOL) == "True"


def test_a_plain_import_leaves_it_out_which_is_what_crashed():
    # the contrast that makes the test above mean something: llama-cpp-python alone loads libstdc++ only
    # as a private dependency of its libraries
    assert _run("import llama_cpp; " + GLOBAL_SYMBOL) == "False"
