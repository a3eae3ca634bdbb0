"""The model file to use: --model, FINSENT_MODEL, or the default model, downloaded from the hub and
converted on first use. Shared by the commands and by Ray actors (each node converts its own copy
once when no --model path is given)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
    with _one_first_run_at_a_time(path.parent, say):
        if path.is_file():
            say(f"Using {path}, which another finsent process has just made")
            return path
        return _download_and_convert(path, say)


@contextmanager
def _one_first_run_at_a_time(models: Path, say) -> Iterator[None]:
    """Several processes starting without a model (Ray actors on one node, two terminals) would each
    download and convert it (2.6 GB at a time) over one another: the first takes an exclusive lock and
    the others wait for it, then use its file. The lock file lies beside the models folder, so that a
    failed first run can still remove the empty folder it created. (Windows: no advisory lock.)"""
    try:
        import fcntl
    except ImportError:
        yield
        return
    models.parent.mkdir(parents=True, exist_ok=True)
    with open(models.parent / f".{models.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"Another finsent process is downloading and converting {DEFAULT_REPO}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download_and_convert(path: Path, say) -> Path:
    # Imported here: the converter (and its hub download) is only needed on first run.
    from finsent_local.convert.errors import ConversionError, HubUnreachable
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
        if isinstance(e, HubUnreachable):
            raise ModelUnavailable(f"{e.what}. {offline_advice(path)}. To use a GGUF file you already have: "
                                   "--model PATH or FINSENT_MODEL=PATH") from None
        if isinstance(e, ConversionError):
            raise ModelUnavailable(f"{e}. To use a GGUF file you already have: --model PATH or "
                                   "FINSENT_MODEL=PATH") from None
        raise
    return path


def offline_advice(path: Path) -> str:
    """How to make the default model without the hub: convert a copy of the checkpoint folder into the very
    file the commands look for (`finsent convert` wants the folder to exist; a failed first run removes the
    empty one it made)."""
    name = DEFAULT_REPO.split("/")[-1]
    if sys.platform == "win32":
        quote = (lambda text: f'"{text}"' if " " in text else text)
        prepare = f"create the folder {quote(str(path.parent))}, then run: "
    else:
        from shlex import quote

        prepare = f"then run: mkdir -p {quote(str(path.parent))} && "
    return (f"No network? Copy the {name} checkpoint folder from a machine that has one (`hf download {DEFAULT_REPO} "
            f"--local-dir {name}`), {prepare}finsent convert /path/to/{name} --outtype {DEFAULT_OUTTYPE} "
            f"--outfile {quote(str(path))}")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
