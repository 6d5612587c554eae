"""The site's deployment verification settings (Site properties, General tab in the console)."""

from __future__ import annotations

import sqlite3

from reconciler.site.embedded.database import SiteDatabase
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import VerificationSettings


def read_verification(db: sqlite3.Connection) -> VerificationSettings:
    settings = dict(db.execute("SELECT key, value FROM site_settings"))
    return VerificationSettings(int(settings["default_size"]), int(settings["maximum_size"]), settings["site_systems"])


class SiteSettings(SiteDatabase):
    def verification_settings(self) -> VerificationSettings:
        return read_verification(self._db)

    def set_verification_settings(self, default_size: int | None = None, maximum_size: int | None = None,
                                  site_systems: str | None = None) -> VerificationSettings:
        """Change the site's deployment verification settings, with the console's own checks."""
        current = self.verification_settings()
        new = VerificationSettings(
            current.default_size if default_size is None else default_size,
            current.maximum_size if maximum_size is None else maximum_size,
            current.site_systems if site_systems is None else site_systems,
        )
        if new.default_size < 0 or new.maximum_size < 0:
            raise PermanentSiteError("collection sizes cannot be negative")
        if new.maximum_size and new.maximum_size <= new.default_size:
            raise PermanentSiteError(f"the maximum size ({new.maximum_size}) must be larger than the default size "
                                     f"({new.default_size}), or 0 to turn it off")
        if new.site_systems not in ("block", "warn"):
            raise PermanentSiteError("collections with site system servers: 'block' or 'warn'")
        with self._tx() as db:
            db.executemany("UPDATE site_settings SET value = ? WHERE key = ?",
                           [(str(new.default_size), "default_size"), (str(new.maximum_size), "maximum_size"),
                            (new.site_systems, "site_systems")])
        return new
