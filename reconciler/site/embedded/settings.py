"""The site's deployment verification settings (Site properties, General tab in the console)."""

from __future__ import annotations

import sqlite3

from reconciler.site.embedded.database import SiteDatabase
from reconciler.site.records import VerificationSettings
from reconciler.site.refusals import changed_verification


def read_verification(db: sqlite3.Connection) -> VerificationSettings:
    settings = dict(db.execute("SELECT key, value FROM site_settings"))
    return VerificationSettings(int(settings["default_size"]), int(settings["maximum_size"]), settings["site_systems"])


class SiteSettings(SiteDatabase):
    def verification_settings(self) -> VerificationSettings:
        return read_verification(self._db)

    def set_verification_settings(self, default_size: int | None = None, maximum_size: int | None = None,
                                  site_systems: str | None = None) -> VerificationSettings:
        """Change the site's deployment verification settings, with the console's own checks."""
        new = changed_verification(self.verification_settings(), default_size, maximum_size, site_systems)
        with self._tx() as db:
            db.executemany("UPDATE site_settings SET value = ? WHERE key = ?",
                           [(str(new.default_size), "default_size"), (str(new.maximum_size), "maximum_size"),
                            (new.site_systems, "site_systems")])
        return new
