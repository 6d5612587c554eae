"""The parse cache: parsed and validated files by Git blob ID, so unchanged files are never parsed twice.

The cache only saves time, so it must never cost a plan: several runs (CI jobs for different pull requests,
a controller and a person at the terminal) share one cache file. A busy database is waited on for a while,
and when it stays busy or cannot be read at all, the run parses without the cache and says so once.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import time
from pathlib import Path

from reconciler.source.loader import FileResult

try:
    from importlib.metadata import version as _version

    TOOL_VERSION = _version("configmgr-ts-reconciler")
except Exception:  # pragma: no cover - running from a source tree without metadata
    TOOL_VERSION = "0"

#: Bumped when what the cache stores changes shape or meaning, beside the tool version (2: a variable with
#: valueFrom is hidden, and hidden: false with valueFrom is an error; 3: a step has an ``element``).
CACHE_FORMAT = "3"

#: How long to wait for another run's write to finish before parsing without the cache. A write holds the
#: lock for one batch of inserts (milliseconds), so waiting this long means something else is wrong.
BUSY_TIMEOUT = 10.0

#: Parsed files written per transaction: bounds the memory held for writing and the time the lock is held.
BATCH = 500

log = logging.getLogger("reconciler.source")


class ParseCache:
    """Parsed files by Git blob ID, in SQLite: shared by concurrent runs, invalidated by tool version.

    Reads run outside any transaction (WAL readers never wait for a writer). Results are written in
    batches, each in one ``BEGIN IMMEDIATE`` transaction: a deferred transaction that reads and then
    writes fails at once with "database is locked" when another run wrote in between, without waiting.
    """

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        self.version = f"{TOOL_VERSION}/{CACHE_FORMAT}"
        self.db: sqlite3.Connection | None = None
        self._pending: dict[str, bytes] = {}
        self._skipping = False  # set when the cache failed during this load; reset by flush()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Not storage.connect(): its 30-second wait suits stores a run cannot do without, not a cache.
            self.db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS files (blob TEXT NOT NULL, version TEXT NOT NULL, "
                            "data BLOB NOT NULL, used REAL NOT NULL, PRIMARY KEY (blob, version))")
        except (sqlite3.Error, OSError) as exc:
            self._skip(exc)
            self.close()

    def _skip(self, exc: Exception) -> None:
        if not self._skipping:
            log.warning("parse cache %s: %s; parsing without it", self.path, exc)
        self._skipping = True

    def get(self, key: str) -> FileResult | None:
        data = self._pending.get(key)
        if data is None and self.db is not None and not self._skipping:
            try:
                row = self.db.execute("SELECT data FROM files WHERE blob = ? AND version = ?",
                                      (key, self.version)).fetchone()
            except sqlite3.Error as exc:
                self._skip(exc)
                return None
            data = row[0] if row else None
        if data is None:
            return None
        try:
            return pickle.loads(data)
        except Exception:  # written by another build of the same version, or damaged: parse again
            return None

    def put(self, key: str, result: FileResult) -> None:
        if self.db is None or self._skipping:
            return
        self._pending[key] = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        if len(self._pending) >= BATCH:
            self._write()

    def _write(self) -> None:
        rows, self._pending = self._pending, {}
        if self.db is None or self._skipping or not rows:
            return
        now = time.time()
        try:
            self.db.execute("BEGIN IMMEDIATE")  # waits up to the busy timeout for another run's batch
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                                [(key, self.version, data, now) for key, data in rows.items()])
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.rollback()
            self._skip(exc)

    def flush(self) -> None:
        """Write what this load parsed; the next load tries the cache again even if this one skipped it.

        A long-running controller keeps one cache: a busy moment must not turn caching off for good.
        """
        self._write()
        self._skipping = False

    def close(self) -> None:
        if self.db is not None:
            self._write()
            self.db.close()
            self.db = None
