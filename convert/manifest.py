"""The sha256 manifest written beside each output file (`<output>.manifest.json`)."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from finsent_local import __version__


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def sha256_of(path: Path, chunk_bytes: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(file: Path, final_name: str, details: dict) -> dict:
    return {
        "file": final_name,
        "sha256": sha256_of(file),
        "size_bytes": file.stat().st_size,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool": f"finsent-local {__version__}",
        **details,
    }


def write_json_atomically(path: Path, data: dict) -> None:
    tmp = path.with_name("." + path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(output: Path) -> dict | None:
    try:
        return json.loads(manifest_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
