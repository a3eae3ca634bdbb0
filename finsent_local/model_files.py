"""Which GGUF file to serve: --model, then FINSENT_MODEL, then the converted default in the user's
cache folder; else download oopere/Llama-FinSent-S and convert it to Q4_K_M there."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

DEFAULT_REPO = "oopere/Llama-FinSent-S"
DEFAULT_OUTTYPE = "q4_k_m"


def cache_dir() -> Path:
    return Path(os.environ.get("FINSENT_CACHE_DIR") or user_cache_dir("finsent-local", appauthor=False))


def default_model_path() -> Path:
    return cache_dir() / "models" / f"Llama-FinSent-S-{DEFAULT_OUTTYPE.upper()}.gguf"


def result_cache_path() -> Path:
    return cache_dir() / "results.sqlite3"


class ModelNotFound(Exception):
    pass


def resolve_model(explicit: str | None, download: bool = True, quiet: bool = False) -> Path:
    """The model file to load; downloads and converts the default model when nothing else is there."""
    chosen = explicit or os.environ.get("FINSENT_MODEL")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            source = "--model" if explicit else "FINSENT_MODEL"
            raise ModelNotFound(f"model file not found: {path} (from {source})")
        return path
    path = default_model_path()
    if path.is_file():
        return path
    if not download:
        raise ModelNotFound(f"no model at {path}; run: finsent convert {DEFAULT_REPO} --outfile {path}")
    from convert.pipeline import ConvertRequest, convert

    path.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"No model yet: downloading {DEFAULT_REPO} and converting it to {DEFAULT_OUTTYPE.upper()} "
              f"(once; saved to {path})", flush=True)
    convert(ConvertRequest(source=DEFAULT_REPO, outtypes=[DEFAULT_OUTTYPE], outfile=str(path), quiet=quiet))
    return path


def model_fingerprint(path: Path) -> str:
    """The file's sha256: from its manifest when the size matches, else computed."""
    from convert.manifest import read_manifest, sha256_of

    manifest = read_manifest(path)
    if manifest and manifest.get("size_bytes") == path.stat().st_size and manifest.get("sha256"):
        return manifest["sha256"]
    return sha256_of(path)
