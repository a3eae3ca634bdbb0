"""File helpers shared by the converter, the server and the set-up commands: content hashes,
atomic writes, and the model fingerprint memo."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def sha256_of(path: Path, chunk_bytes: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename it over `path`:
    readers see the old file or the new one, never a half-written one. The file is readable by its
    owner only (keys, settings with an API key) unless `mode` is given (a file to share), which the
    user's umask then narrows as for any new file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        if mode is not None and os.name != "nt":
            umask = os.umask(0o022)
            os.umask(umask)
            os.fchmod(fd, mode & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_file(path: Path) -> None:
    """Flush a file written by another library (pyarrow, openpyxl), or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: Path) -> None:
    """Flush a folder's entries (a rename into it, a file created) to the disk. Windows cannot open a
    folder for this; there the rename itself is what NTFS journals."""
    if os.name != "nt":
        fsync_file(path)


def replace_durably(source: Path, target: Path) -> None:
    """Put `source` in place under `target` so that a power cut leaves the old file or the whole new
    one: its data on disk first, then the rename, then the rename itself on disk."""
    fsync_file(source)
    os.replace(source, target)
    fsync_folder(Path(target).parent)


def write_json_atomically(path: Path, data: dict) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


MEMO_ENTRIES = 32


def file_fingerprint(path: Path, memo_file: Path | None = None) -> str:
    """The sha256 of the file's content. Hashing a model takes seconds, so the result is remembered in
    `memo_file` by path, size, modification time and inode: a different file copied over the same
    name (even of the same size) changes the mtime or inode, and is hashed again."""
    path = Path(path).resolve()
    stat = path.stat()
    identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}
    memo: dict = {}
    if memo_file is not None:
        try:
            memo = json.loads(Path(memo_file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}
        entry = memo.get(str(path)) if isinstance(memo, dict) else None
        if isinstance(entry, dict) and all(entry.get(k) == v for k, v in identity.items()) and entry.get("sha256"):
            return entry["sha256"]
    digest = sha256_of(path)
    if memo_file is not None:
        memo = {k: v for k, v in memo.items() if k != str(path)} if isinstance(memo, dict) else {}
        memo[str(path)] = {**identity, "sha256": digest}
        memo = dict(list(memo.items())[-MEMO_ENTRIES:])
        try:
            write_json_atomically(Path(memo_file), memo)
        except OSError:
            pass  # a read-only cache folder: hash again next time
    return digest
