"""Content on distribution points: per-DP state and installed version of each package."""

from __future__ import annotations

import sqlite3

from reconciler.site.embedded.database import SiteDatabase
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import ContentState, ContentStatus


class Content(SiteDatabase):
    def content_status(self, package_id: str) -> dict[str, ContentStatus]:
        rows = self._db.execute("SELECT dp, state, installed_version FROM content_status WHERE package_id = ?",
                                (package_id,))
        return {dp: ContentStatus(package_id, dp, ContentState(st), v) for dp, st, v in rows}

    def _package_version(self, db: sqlite3.Connection, package_id: str) -> int:
        row = db.execute("SELECT source_version FROM packages WHERE id = ?", (package_id,)).fetchone()
        if row is None:
            raise PermanentSiteError(f"package {package_id} does not exist")
        return int(row[0])

    def _check_dps(self, db: sqlite3.Connection, dps: list[str]) -> None:
        known = {r[0].casefold() for r in db.execute("SELECT name FROM distribution_points")}
        missing = [dp for dp in dps if dp.casefold() not in known]
        if missing:
            raise PermanentSiteError(f"distribution point(s) {', '.join(missing)} do not exist")

    def distribute_content(self, package_id: str, dps: list[str]) -> None:
        """The embedded site's distribution manager copies content at once (a real DP takes a while)."""
        with self._tx() as db:
            version = self._package_version(db, package_id)
            self._check_dps(db, dps)
            db.executemany("INSERT OR REPLACE INTO content_status VALUES (?, ?, ?, ?)",
                           [(package_id, dp, int(ContentState.INSTALLED), version) for dp in dps])

    def redistribute_content(self, package_id: str, dp: str) -> None:
        with self._tx() as db:
            version = self._package_version(db, package_id)
            self._check_dps(db, [dp])
            db.execute("INSERT OR REPLACE INTO content_status VALUES (?, ?, ?, ?)",
                       (package_id, dp, int(ContentState.INSTALLED), version))

    def remove_content(self, package_id: str, dps: list[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM content_status WHERE package_id = ? AND dp = ?",
                           [(package_id, dp) for dp in dps])
