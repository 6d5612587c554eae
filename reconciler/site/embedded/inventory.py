"""What a console administrator creates outside this tool: collections, DPs, packages, devices.

These calls are the embedded site's own (the demo inventory, tests, benchmarks); they are no part of
the ``Site`` protocol, since this tool never creates inventory on a real site.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.site.embedded.database import SiteDatabase
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import ContentState, PackageType

#: The first ResourceID the site hands out, as a new ConfigMgr site does (16777220).
FIRST_RESOURCE_ID = 16777220


class Inventory(SiteDatabase):
    """Inventory of an embedded site, each call one transaction."""

    def add_collection(self, name: str, member_count: int = 0, has_site_systems: bool = False,
                       collection_id: str | None = None) -> str:
        with self._tx() as db:
            cid = collection_id or self._new_id(db)
            db.execute("INSERT INTO collections (id, name, member_count, has_site_systems) VALUES (?, ?, ?, ?)",
                       (cid, name, member_count, int(has_site_systems)))
        return cid

    def set_collection_members(self, collection_id: str, member_count: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE collections SET member_count = ? WHERE id = ?", (member_count, collection_id))

    def delete_collection(self, collection_id: str) -> None:
        """Deleting a collection deletes its variables and deployments, as in ConfigMgr."""
        if collection_id.startswith("SMS"):
            raise PermanentSiteError(f"{collection_id} is a built-in collection and cannot be deleted")
        with self._tx() as db:
            db.execute("DELETE FROM collections WHERE id = ?", (collection_id,))
            db.execute("DELETE FROM collection_variables WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM collection_settings WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM deployments WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM dp_group_collections WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM collection_members WHERE collection_id = ?", (collection_id,))

    def add_distribution_point(self, name: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO distribution_points VALUES (?, ?)", (name, self.site_code))

    def add_dp_group(self, name: str, members: list[str], collections: Iterable[str] = ()) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO dp_groups VALUES (?)", (name,))
            db.executemany("INSERT INTO dp_group_members VALUES (?, ?)", [(name, m) for m in members])
            db.executemany("INSERT INTO dp_group_collections VALUES (?, ?)", [(name, c) for c in collections])

    def add_package(self, name: str, package_type: PackageType, share_enabled: bool = False,
                    package_id: str | None = None, source_version: int = 1) -> str:
        with self._tx() as db:
            pid = package_id or self._new_id(db)
            db.execute("INSERT INTO packages VALUES (?, ?, ?, ?, ?)",
                       (pid, name, package_type.value, source_version, int(share_enabled)))
        return pid

    def delete_package(self, package_id: str) -> None:
        """A console administrator deletes content; sequences that reference it keep a dangling reference."""
        with self._tx() as db:
            db.execute("DELETE FROM packages WHERE id = ?", (package_id,))
            db.execute("DELETE FROM content_status WHERE package_id = ?", (package_id,))

    def update_package_source(self, package_id: str) -> int:
        """A source change: the package's version goes up, so DPs holding the old one are out of date."""
        with self._tx() as db:
            db.execute("UPDATE packages SET source_version = source_version + 1 WHERE id = ?", (package_id,))
            return int(db.execute("SELECT source_version FROM packages WHERE id = ?", (package_id,)).fetchone()[0])

    def set_content_state(self, package_id: str, dp: str, state: ContentState,
                          installed_version: int | None = None) -> None:
        with self._tx() as db:
            version = installed_version
            if version is None:
                row = db.execute("SELECT installed_version FROM content_status WHERE package_id = ? AND dp = ?",
                                 (package_id, dp)).fetchone()
                version = row[0] if row else 0
            db.execute("INSERT OR REPLACE INTO content_status VALUES (?, ?, ?, ?)",
                       (package_id, dp, int(state), version))

    def put_collection_variable(self, collection_id: str, name: str, value: str, masked: bool = False,
                                precedence: int = 9) -> bool:
        """A console edit of one collection variable: added, or its value changed; the others are kept as they
        are (masked ones too, which a reader of the protocol could not write back). True when it was added.

        A collection without settings gets them with ``precedence`` (9, the lowest priority, as the console's
        default); names compare without case, as ConfigMgr's do.
        """
        if collection_id.startswith("SMS"):
            raise PermanentSiteError(f"{collection_id} is a built-in collection; it cannot hold variables")
        sealed = self._seal_variables([(name, value, masked)])[0][1]  # type: ignore[attr-defined]
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM collections WHERE id = ?", (collection_id,)).fetchone():
                raise PermanentSiteError(f"collection {collection_id} does not exist")
            db.execute("INSERT OR IGNORE INTO collection_settings VALUES (?, ?)", (collection_id, precedence))
            cur = db.execute("UPDATE collection_variables SET value = ?, masked = ? WHERE collection_id = ? AND "
                             "name = ? COLLATE NOCASE", (sealed, int(masked), collection_id, name))
            if cur.rowcount:
                return False
            db.execute("INSERT INTO collection_variables VALUES (?, ?, ?, ?)",
                       (collection_id, name, sealed, int(masked)))
            return True

    def add_members(self, collection_id: str, resource_ids: list[int]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO collection_members VALUES (?, ?)",
                           [(collection_id, r) for r in resource_ids])
            count = db.execute("SELECT COUNT(*) FROM collection_members WHERE collection_id = ?",
                               (collection_id,)).fetchone()[0]
            db.execute("UPDATE collections SET member_count = MAX(member_count, ?) WHERE id = ?",
                       (count, collection_id))

    def add_computer(self, name: str, resource_id: int | None = None) -> int:
        if resource_id is not None:
            with self._tx() as db:
                db.execute("INSERT INTO computers VALUES (?, ?)", (resource_id, name))
            return resource_id
        return self.add_computers([name])[0]

    def add_computers(self, names: Iterable[str]) -> list[int]:
        """Devices discovered in bulk (one transaction), with the next free ResourceIDs, in order."""
        with self._tx() as db:
            first = int(db.execute("SELECT COALESCE(MAX(resource_id) + 1, ?) FROM computers",
                                   (FIRST_RESOURCE_ID,)).fetchone()[0])
            rows = [(first + i, name) for i, name in enumerate(names)]
            db.executemany("INSERT INTO computers VALUES (?, ?)", rows)
        return [rid for rid, _ in rows]
