"""The sha256 manifest written beside each output file (`<output>.manifest.json`)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from finsent_local import __version__
from finsent_local.files import sha256_of


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def build_manifest(file: Path, final_name: str, details: dict) -> dict:
    return {
        "file": final_name,
        "sha256": sha256_of(file),
        "size_bytes": file.stat().st_size,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool": f"finsent-local {__version__}",
        **details,
    }


def read_manifest(output: Path) -> dict | None:
    try:
        return json.loads(manifest_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
