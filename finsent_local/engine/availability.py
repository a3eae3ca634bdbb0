"""Whether the local engine (llama-cpp-python, which compiles llama.cpp) is installed.

It is an extra (`finsent-local[engine]`): the Excel functions, `finsent excel` and the HTTP client work
without it, so a Windows PC that only talks to a server never needs a compiler. The commands that run
the model say so in one line when it is missing, instead of an import error.
"""

from __future__ import annotations

import importlib.util

ENGINE_MISSING = ("the local engine is not installed: pip install 'finsent-local[engine]' (it compiles llama.cpp; "
                  "bash setup.sh or .\\setup.ps1 do it for you, see the README)")


def engine_missing() -> str | None:
    """The message for the user when llama_cpp cannot be imported, else None."""
    return None if importlib.util.find_spec("llama_cpp") is not None else ENGINE_MISSING
