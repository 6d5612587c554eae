"""The connection every part of the embedded site shares: opening, errors, transactions, IDs.

``EmbeddedSite`` is assembled from one class per concept (inventory, task sequences, deployments,
content, variables, sealing, reading); each is a mixin over :class:`SiteDatabase`, which owns the one
SQLite connection and turns what SQLite says into the site's typed errors.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reconciler.site.embedded.schema import MIGRATIONS, damaged_message
from reconciler.site.errors import PermanentSiteError, SiteError, SiteNotFound, TransientSiteError
from reconciler.storage import connect, migrate, transaction


def record_json(record: Any) -> str:
    """A record as the site stores it: every field but its ID and its sequence XML (a column of its own)."""
    data = asdict(record)
    data.pop("id", None)
    data.pop("sequence", None)
    return json.dumps(data, sort_keys=True)


class SiteDatabase:
    """One embedded site file, open: WAL mode, so a reader (a plan) never blocks on a writer."""

    path: Path
    site_code: str
    _db: sqlite3.Connection
    _read_only: bool = False

    def _connect(self, path: str | Path, read_only: bool) -> bool:
        """Open (and, unless ``read_only``, create) the file; True when it already existed."""
        self.path = Path(path)
        self._read_only = read_only
        existed = self.path.exists()
        if not existed:
            if read_only:
                raise SiteNotFound(f"embedded site {self.path} does not exist")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(self.path, self._damaged, check=existed, busy=self._busy, unavailable=self._unavailable)
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise
        return existed

    @property
    def location(self) -> str:
        return str(self.path)

    def close(self) -> None:
        self._db.close()

    def _damaged(self, detail: str) -> SiteError:
        return PermanentSiteError(damaged_message(self.path, detail))

    def _busy(self, detail: str) -> SiteError:
        return TransientSiteError(f"embedded site {self.path} is busy: {detail}; try again when the other writer "
                                  "is done")

    def _unavailable(self, detail: str) -> SiteError:
        if self._read_only and "readonly" in detail:  # wording only: query_only refuses writes as READONLY
            return PermanentSiteError(f"embedded site {self.path} was opened read-only; nothing is written to it "
                                      f"({detail})")
        return PermanentSiteError(f"embedded site {self.path} cannot be used: {detail}")

    def _migrate(self) -> None:
        migrate(self._db, MIGRATIONS, lambda version: PermanentSiteError(
            f"{self.path} has site schema version {version}; this tool knows up to {len(MIGRATIONS)}: "
            "upgrade the tool"))

    def _tx(self) -> Any:
        """A write transaction (BEGIN IMMEDIATE): every mutation of the site is exactly one."""
        return transaction(self._db)

    def _meta(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    def _new_id(self, db: sqlite3.Connection) -> str:
        """IDs the ConfigMgr way: site code and five hexadecimal digits (PS100012)."""
        number = int(db.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()[0])
        db.execute("UPDATE meta SET value = ? WHERE key = 'next_id'", (str(number + 1),))
        return f"{self.site_code}{number:05X}"
