"""The model file to use: --model, FINSENT_MODEL, or the default model, downloaded from the hub and
converted on first use. Shared by the commands and by Ray actors (each node converts its own copy
once when no --model path is given)."""

from __future__ import annotations

import sys
from pathlib import Path

from .model_files import DEFAULT_OUTTYPE, DEFAULT_REPO, ModelNotFound, default_model_path, explicit_model


class ModelUnavailable(Exception):
    """No model file, and none could be made: one line for the user."""


def ensure_model(explicit: str | None, say=lambda line: print(line, file=sys.stderr)) -> Path:
    try:
        chosen = explicit_model(explicit)
    except ModelNotFound as e:
        raise ModelUnavailable(str(e)) from None
    if chosen is not None:
        return chosen
    path = default_model_path()
    if path.is_file():
        return path
    # Imported here: the converter (and its hub download) is only needed on first run.
    from finsent_local.convert.errors import ConversionError
    from finsent_local.convert.pipeline import ConvertRequest, convert as run_conversion

    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    say(f"No model yet: downloading {DEFAULT_REPO} and converting it to {DEFAULT_OUTTYPE.upper()} "
        f"(once; saved to {path})")
    try:
        run_conversion(ConvertRequest(source=DEFAULT_REPO, outtypes=[DEFAULT_OUTTYPE], outfile=str(path)))
    except BaseException as e:  # a failed or interrupted first run leaves no empty models folder behind
        if created:
            _remove_if_empty(path.parent)
        if isinstance(e, ConversionError):
            raise ModelUnavailable(f"{e}. To use a GGUF file you already have: --model PATH or "
                                   "FINSENT_MODEL=PATH") from None
        raise
    return path


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
