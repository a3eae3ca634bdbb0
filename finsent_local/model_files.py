"""Where things live: which GGUF file to serve (--model, then FINSENT_MODEL, then the converted
default in the user's cache folder) and the result cache. The first-run download and conversion of
the default model is first_run's job (called by the commands), so this module never imports the
converter."""

from __future__ import annotations

import os
from pathlib import Path

from . import cache_folder

DEFAULT_REPO = "oopere/Llama-FinSent-S"
DEFAULT_OUTTYPE = "q4_k_m"


def cache_dir() -> Path:
    return cache_folder.cache_dir(os.environ)


def default_model_path() -> Path:
    return cache_dir() / "models" / f"Llama-FinSent-S-{DEFAULT_OUTTYPE.upper()}.gguf"


def result_cache_path() -> Path:
    return cache_dir() / "results.sqlite3"


class ModelNotFound(Exception):
    pass


def explicit_model(explicit: str | None) -> Path | None:
    """The file named by --model or FINSENT_MODEL, checked; None when neither is given."""
    chosen = explicit or os.environ.get("FINSENT_MODEL")
    if not chosen:
        return None
    path = Path(chosen).expanduser()
    if not path.is_file():
        source = "--model" if explicit else "FINSENT_MODEL"
        raise ModelNotFound(f"model file not found: {path} (from {source})")
    return path
