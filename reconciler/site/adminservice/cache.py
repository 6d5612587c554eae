"""The local copy of what a site's objects held when they were last fetched by key, so a read fetches only what
moved.

A task sequence's ``Sequence`` XML, a deployment's ``AssignedSchedule`` and a settings object's variables are
lazy properties: a site returns them only from a get by key, one request per object. A plan of 10,000 task
sequences cannot afford 10,000 requests when nothing changed, so each object's full row is kept here with the
*token* it was fetched under (a digest of its cheap listed properties: ``SourceVersion``,
``SedoObjectVersion``, ``LastModificationTime``, name, flags, …). A read lists the cheap properties of every
object, and fetches by key only the objects whose token differs from the one kept, or that are missing here.

Some objects carry no property that moves with their lazy ones (a deployment's schedule, a device's name, the
site's verification settings): such a row is trusted for ``max_age`` seconds only (the caller says which rows
are versioned).

It is a cache, and nothing else: the state store never relies on it, losing it costs one slow read, and a
damaged or foreign file is set aside with a warning and rebuilt. It holds only what the site itself returns to
a read (masked values and step secrets are never among them), in a file only its owner may read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The cache's own format; a file of another version is rebuilt, never migrated.
FORMAT = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    class TEXT NOT NULL, key TEXT NOT NULL, token TEXT NOT NULL, fetched REAL NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (class, key));
"""


@dataclass(frozen=True, slots=True)
class Cached:
    """One object's full row, the token it was fetched under and when (seconds since the epoch)."""

    token: str
    fetched: float
    row: dict[str, Any]


class ReadCache:
    """Full rows of a site's objects by class and key, in a SQLite file (or in memory when ``path`` is None).

    Every failure of the file (damaged, foreign, locked for long, unwritable) is logged once and the cache
    goes on in memory: a read never fails because of its cache.
    """

    def __init__(self, path: Path | None, site: str, clock: Any = time.time) -> None:
        self.path = path
        self.site = site
        self._clock = clock
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            return self._memory()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            existed = self.path.exists()
            if not existed:
                self.path.touch(mode=0o600)
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta and (meta.get("format") != FORMAT or meta.get("site") != self.site):
                db.close()
                return self._rebuild(f"it was written for {meta.get('site', '?')!r} (format "
                                     f"{meta.get('format', '?')})")
            if not meta:
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [("format", FORMAT),
                                                                              ("site", self.site)])
            return db
        except sqlite3.DatabaseError as exc:
            return self._rebuild(str(exc))
        except OSError as exc:
            log.warning("read cache %s cannot be used (%s); reading the site without it", self.path,
                        exc.strerror or exc)
            self.path = None
            return self._memory()

    def _rebuild(self, why: str) -> sqlite3.Connection:
        assert self.path is not None
        log.warning("read cache %s is damaged or not this site's (%s); it is rebuilt (the next read fetches "
                    "every object once)", self.path, why)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
            except OSError:
                self.path = None
                return self._memory()
        path, self.path = self.path, None
        try:
            path.touch(mode=0o600)
            db = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", FORMAT), ("site", self.site)])
        except (sqlite3.DatabaseError, OSError):
            return self._memory()
        self.path = path
        return db

    def _memory(self) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db.executescript(_SCHEMA)
        return db

    def _failed(self, exc: sqlite3.Error) -> None:
        """The file broke while in use: go on in memory (this run reads more), rebuilt on the next open."""
        log.warning("read cache %s failed (%s); this run goes on without it", self.path, exc)
        self._db.close()
        self._db = self._memory()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # damaged: the next run starts a new one
            self.path = None

    def close(self) -> None:
        self._db.close()

    def now(self) -> float:
        return float(self._clock())

    # -- reading and writing -----------------------------------------------------------------------------

    def load(self, cls: str) -> dict[str, Cached]:
        """Every row kept for a class, by key."""
        try:
            rows = self._db.execute("SELECT key, token, fetched, row FROM objects WHERE class = ?", (cls,)).fetchall()
        except sqlite3.Error as exc:
            self._failed(exc)
            return {}
        out: dict[str, Cached] = {}
        for key, token, fetched, text in rows:
            try:
                row = json.loads(text)
            except ValueError:
                continue  # a scribbled row: fetched again
            if isinstance(row, dict):
                out[key] = Cached(token, float(fetched), row)
        return out

    def get(self, cls: str, key: str) -> Cached | None:
        try:
            found = self._db.execute("SELECT token, fetched, row FROM objects WHERE class = ? AND key = ?",
                                     (cls, key)).fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return None
        if found is None:
            return None
        try:
            row = json.loads(found[2])
        except ValueError:
            return None
        return Cached(found[0], float(found[1]), row) if isinstance(row, dict) else None

    def put(self, cls: str, entries: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Keep ``(key, token, row)`` entries, fetched now."""
        now = self.now()
        data = [(cls, key, token, now, json.dumps(row, sort_keys=True)) for key, token, row in entries]
        if not data:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)", data)
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if "locked" in str(exc) or "busy" in str(exc):
                log.debug("read cache %s is busy; %d row(s) not kept this time", self.path, len(data))
                return
            self._failed(exc)
        except sqlite3.Error as exc:
            self._failed(exc)

    def forget(self, cls: str, keys: Iterable[str] | None = None) -> None:
        """Drop rows of a class (``keys`` None: all of them): after a write, or for objects that are gone."""
        try:
            if keys is None:
                self._db.execute("DELETE FROM objects WHERE class = ?", (cls,))
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM objects WHERE class = ? AND key = ?", [(cls, k) for k in keys])
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._failed(exc)  # a row that cannot be forgotten must not be trusted later: drop the whole file
        except sqlite3.Error as exc:
            self._failed(exc)
