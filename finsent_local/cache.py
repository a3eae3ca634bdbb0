"""A persistent result cache in SQLite: a repeated text costs no inference.

Keyed by model file hash, scheme, prompt preset and version, and the text itself. One connection per
thread, WAL journal and a busy timeout make it safe for the server's threads and for several
processes sharing the file. A file that SQLite cannot read is moved aside and rebuilt.
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


class ResultCache:
    def __init__(self, path: Path, namespace: str):
        """namespace: what the results depend on besides scheme and text (model hash, prompt preset/version)."""
        self.path = Path(path)
        self.namespace = namespace
        self._local = threading.local()
        self._open_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_or_rebuild()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
        conn.commit()
        return conn

    def _check_or_rebuild(self) -> None:
        with self._open_lock:
            try:
                conn = self._connect()
                ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
                conn.close()
                if ok:
                    return
            except sqlite3.DatabaseError:
                pass
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("result cache %s is unreadable; moved to %s and rebuilt", self.path, aside)
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            self._connect().close()

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

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
        except sqlite3.DatabaseError as e:  # never fail a request because of the cache
            log.warning("result cache read failed: %s", e)
        return found

    def put_many(self, scheme: str, results: dict[str, dict]) -> None:
        now = time.time()
        rows = [(self._key(scheme, t), json.dumps(r), now) for t, r in results.items()]
        try:
            with self._conn:
                self._conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
        except sqlite3.DatabaseError as e:
            log.warning("result cache write failed: %s", e)
