"""FinSent Local: Llama-FinSent-S on your own machine.

    from finsent_local import FinSent
    fs = FinSent()                        # or FinSent.connect("http://127.0.0.1:8000")
    fs.classify_series(df["headline"])    # label, score, p_<label>, error

(finsent_local.api; imported on first use, so `import finsent_local` loads neither llama.cpp nor pandas.)
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers: the names below are loaded lazily at run time
    from .api import Explanation, FinSent, FinSentError, Result, Word

__all__ = ["Explanation", "FinSent", "FinSentError", "Result", "Word", "__version__"]


def __getattr__(name: str):
    if name in ("Explanation", "FinSent", "FinSentError", "Result", "Word"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'finsent_local' has no attribute {name!r}")


def __dir__() -> list[str]:
    """dir(finsent_local) lists the lazily loaded names too (tab completion), without loading them."""
    return sorted(set(globals()) | set(__all__))
