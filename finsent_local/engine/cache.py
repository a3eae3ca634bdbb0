"""A persistent result cache in SQLite: a repeated text costs no inference.

Keyed by model file hash, scheme, prompt preset and version, and the text itself. One connection per
thread, WAL journal and a busy timeout make it safe for the server's threads and for several
processes sharing the file.

- A file that is really corrupt (not a database, or failing SQLite's integrity check) is moved aside
  and rebuilt.
- A file that is merely locked by another process, read-only, or on a full disk is left alone:
  opening raises CacheUnavailable (the caller serves without a cache, with a warning), and a write
  that fails later (disk full) turns writing off with one warning; classification always goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger("finsent.cache")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class CacheUnavailable(Exception):
    """The cache file cannot be used now (locked, read-only, no space); it is not corrupt."""


def _is_corruption(error: sqlite3.Error) -> bool:
    name = getattr(error, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB" or "malformed" in str(error)


class ResultCache:
    def __init__(self, path: Path, namespace: str, busy_timeout_s: float = 10.0):
        """namespace: what the results depend on besides scheme and text (model hash, prompt preset/version)."""
        self.path = Path(path)
        self.namespace = namespace
        self.busy_timeout_s = busy_timeout_s
        self.write_error: str | None = None  # set once a write failed for a lasting reason (disk full)
        self._local = threading.local()
        self._open_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []  # one per thread that used the cache
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheUnavailable(f"cannot create {self.path.parent}: {e.strerror or e}") from None
        self._check_or_rebuild()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
        conn.commit()
        return conn

    def _check_or_rebuild(self) -> None:
        with self._open_lock:
            try:
                conn = self._connect()
                try:
                    ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
                    if ok:  # can we write? (a read-only file or folder fails here, a lock waits first)
                        conn.execute("BEGIN IMMEDIATE")
                        conn.rollback()
                finally:
                    conn.close()
            except sqlite3.DatabaseError as e:
                if not _is_corruption(e):  # locked, read-only, cannot open, disk full: not our file's fault
                    raise CacheUnavailable(f"{self.path}: {e}") from None
                ok = False
            if ok:
                return
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("result cache %s is corrupt; moved to %s and rebuilt", self.path, aside)
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            self._connect().close()

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._open_lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._open_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def _key(self, scheme: str, text: str) -> str:
        return hashlib.sha256(f"{self.namespace}\x00{scheme}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def get_many(self, scheme: str, texts: list[str]) -> dict[str, dict]:
        keys = {self._key(scheme, t): t for t in set(texts)}
        found: dict[str, dict] = {}
        items = list(keys)
        try:
            for start in range(0, len(items), 500):
                chunk = items[start : start + 500]
                rows = self._conn.execute(
                    f"SELECT key, result FROM results WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for key, result in rows:
                    found[keys[key]] = json.loads(result)
        except sqlite3.Error as e:  # never fail a request because of the cache (closed at shutdown too)
            log.warning("result cache read failed: %s", e)
        return found

    def put_many(self, scheme: str, results: dict[str, dict]) -> None:
        if self.write_error or not results:
            return
        now = time.time()
        rows = [(self._key(scheme, t), json.dumps(r), now) for t, r in results.items()]
        try:
            with self._conn:
                self._conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
        except sqlite3.Error as e:
            if getattr(e, "sqlite_errorname", "") in ("SQLITE_FULL", "SQLITE_READONLY") or "full" in str(e):
                self.write_error = str(e)  # lasting: say so once and stop trying
                log.warning("result cache %s: %s; classification continues without caching new results",
                            self.path, e)
            else:
                log.warning("result cache write failed: %s", e)
