"""Where the project keeps what it can rebuild (models, results, built llama.cpp wheels): one rule for
the package and for llama_build/install.py, which runs before anything else is installed. So this file
uses the standard library only, and install.py loads it by its path.

The folders are platformdirs' user cache folders (what the package used before this rule was its own),
with one choice made: on macOS ~/Library/Caches always (platformdirs' newer releases follow
XDG_CACHE_HOME there too, its older ones do not; a folder that moved with the platformdirs release
would lose the converted model).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "finsent-local"


def cache_dir(environ=os.environ, system: str = sys.platform) -> Path:
    """$FINSENT_CACHE_DIR, else the user's cache folder for this system."""
    if environ.get("FINSENT_CACHE_DIR"):
        return Path(environ["FINSENT_CACHE_DIR"])
    if system == "darwin":
        return Path.home() / "Library" / "Caches" / APP_NAME
    if system == "win32":
        local = environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / APP_NAME / "Cache"
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"  # a relative one is ignored (XDG)
    return base / APP_NAME
