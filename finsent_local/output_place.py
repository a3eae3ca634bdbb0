"""May this command write here? The one owner of that question, asked by every command that writes
files (classify, classify --ray, eval, tune, convert, excel freeze, excel set-up, certs --export) before
it reads or computes anything.

The rules, the same for every command:
- An output never equals, holds or sits inside one of the command's inputs: not the labelled file
  (`eval --predictions gold.csv`), not the folder that holds it (`tune --output data` with
  `--input data/desk.csv`), not a place inside a folder the command reads whole (`classify --ray`).
- Two outputs of one command never name the same file (`--report x --json x`).
- An existing output is replaced only with --force, and only when it is what the command makes:
  - a file: a plain file, never a folder; and where the command's output has a recognisable kind (a
    GGUF file for `convert`), a file of that kind;
  - a folder: one the project made, known by the manifest it wrote into it, holding nothing that the
    manifest does not account for. Anything else is refused and nothing is deleted.
- The output's parent folder exists.

Each refusal is an OutputRefused whose message is one line that names the option.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


class OutputRefused(ValueError):
    """This command may not write there: one line for the user."""


@dataclass(frozen=True)
class FileOutput:
    """A file a command writes. `kind` and `is_kind` (optional) say what an existing file must be for
    --force to replace it, e.g. "a GGUF file" and a check of its first bytes."""

    path: Path
    option: str  # how the user named it: "--output", "--report", ...
    kind: str | None = None
    is_kind: Callable[[Path], bool] | None = None


@dataclass(frozen=True)
class FolderOutput:
    """A folder a command fills. `made_here(folder)` gives the names of the entries the project made in
    an existing folder (read from the manifest it wrote there), or None when it did not make it."""

    path: Path
    option: str
    made_by: str  # "finsent tune", for the messages
    made_here: Callable[[Path], set[str] | None]


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser().resolve()))


def _same_file(a: Path, b: Path) -> bool:
    """Equal once resolved, or the same file under two names (a hard link, a case-insensitive disk)."""
    if _resolved(a) == _resolved(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def local_model_file(model: str | None) -> Path | None:
    """--model as a file on this machine (an input no output may replace), else None (none given, a URL,
    or a path only the cluster's nodes have)."""
    if not model or "://" in model:
        return None
    path = Path(model).expanduser()
    return path if path.is_file() else None


def checkpoint_files(source: Path) -> list[Path]:
    """A checkpoint folder as an input: the files in it, which the converter and tune read by name. An
    output may go into that folder (llama.cpp's habit), never over one of them; a file is itself."""
    source = Path(source).expanduser()
    if source.is_dir():
        return [p for p in source.iterdir() if p.is_file()]
    return [source] if source.exists() else []


def touching_input(output: Path, inputs: Iterable[Path]) -> Path | None:
    """The first input that `output` equals, holds, or sits inside (when the input is a folder); None if
    it touches none."""
    target = _resolved(output)
    for given in inputs:
        if given is None:
            continue
        source = _resolved(given)
        if _same_file(output, given) or target in source.parents or (source.is_dir() and source in target.parents):
            return Path(given)
    return None


def _check_not_an_input(path: Path, option: str, inputs: Iterable[Path]) -> None:
    touched = touching_input(path, inputs)
    if touched is None:
        return
    target, source = _resolved(path), _resolved(touched)
    if _same_file(path, touched):
        how = "is"
    elif target in source.parents:
        how = "holds"
    else:
        how = "lies inside"
    raise OutputRefused(f"{option} {path} {how} the input {touched}; choose another {option}")


def _check_parent(path: Path, option: str) -> None:
    parent = _resolved(path).parent
    if not parent.is_dir():
        raise OutputRefused(f"no folder {Path(path).parent} for {option}")


def check_file_output(output: FileOutput, inputs: Iterable[Path] = (), force: bool = False) -> None:
    """Raise OutputRefused unless the command may write the file `output.path` (see the module's rules)."""
    path, option = Path(output.path), output.option
    _check_not_an_input(path, option, list(inputs))
    if path.is_dir():
        raise OutputRefused(f"{option} {path} is a folder; give a file name")
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputRefused(f"{path} exists; use --force to replace it")
        if output.is_kind is not None and path.is_file() and not output.is_kind(path):
            raise OutputRefused(f"{path} exists and is not {output.kind}, so --force will not replace it; choose "
                                f"another {option}")
        if not path.is_file():
            raise OutputRefused(f"{path} exists and is not a plain file, so --force will not replace it")
    _check_parent(path, option)


def check_folder_output(output: FolderOutput, inputs: Iterable[Path] = (), force: bool = False) -> None:
    """Raise OutputRefused unless the command may fill the folder `output.path`: absent or empty, or
    (with --force) a folder `output.made_by` made, holding only what it made."""
    path, option = Path(output.path), output.option
    _check_not_an_input(path, option, list(inputs))
    _check_parent(path, option)
    if not (path.exists() or path.is_symlink()):
        return
    if not path.is_dir():
        raise OutputRefused(f"{option} {path} is a file; {option} is a folder")
    if not any(path.iterdir()):
        return
    if not force:
        raise OutputRefused(f"{path} exists; use --force to replace it")
    made = output.made_here(path)
    if made is None:
        raise OutputRefused(f"{path} exists and was not made by `{output.made_by}`, so it is left as it is; choose a "
                            f"new or empty {option} folder")
    strangers = sorted(entry.name for entry in path.iterdir() if entry.name not in made)
    if strangers:
        shown = ", ".join(strangers[:5]) + (f" and {len(strangers) - 5} more" if len(strangers) > 5 else "")
        raise OutputRefused(f"{path} also holds what `{output.made_by}` did not write ({shown}), so it is left as it "
                            f"is; choose another {option} folder")


def check_outputs(outputs: Iterable[FileOutput | FolderOutput | None], inputs: Iterable[Path | None] = (),
                  force: bool = False) -> None:
    """Every output of one command: each checked, and no two naming the same place (or one inside another)."""
    given = [o for o in outputs if o is not None and o.path is not None]
    inputs = [Path(p) for p in inputs if p is not None]
    for i, first in enumerate(given):
        for second in given[i + 1:]:
            if touching_input(second.path, [first.path]) is not None or \
                    touching_input(first.path, [second.path]) is not None:
                raise OutputRefused(f"{first.option} and {second.option} name the same place ({first.path}); "
                                    "give each its own")
    for output in given:
        if isinstance(output, FolderOutput):
            check_folder_output(output, inputs, force)
        else:
            check_file_output(output, inputs, force)


def made_by_manifest(manifest_name: str, listed: Callable[[dict], Iterable[str]]) -> Callable[[Path], set[str] | None]:
    """A `made_here` for folders whose manifest (JSON, `manifest_name`) lists what the project wrote:
    `listed(manifest)` gives those entry names; the manifest itself counts too."""
    def made_here(folder: Path) -> set[str] | None:
        import json

        try:
            manifest = json.loads((folder / manifest_name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict):
            return None
        names = {name for name in listed(manifest) if isinstance(name, str) and name not in ("", ".", "..")
                 and "/" not in name and "\\" not in name}
        return names | {manifest_name}
    return made_here


GGUF_MAGIC = b"GGUF"


def is_gguf(path: Path) -> bool:
    """A GGUF file, by its first four bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def is_zip_file(path: Path) -> bool:
    """An Office Open XML file (.xlsx, .xlsm) is a zip archive: its first bytes say so."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False
