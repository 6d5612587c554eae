"""Task sequence variables of collections (``SMS_CollectionSettings``) and computers (``SMS_MachineSettings``)."""

from __future__ import annotations

from reconciler.site.embedded.sealing import Sealing
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import CollectionSettings, LiveVariable, MachineSettings
from reconciler.site.refusals import MAX_VARIABLES_PER_COMPUTER, refuse_duplicate_variables


class Variables(Sealing):
    def get_collection_settings(self, collection_id: str) -> CollectionSettings | None:
        row = self._db.execute("SELECT precedence FROM collection_settings WHERE collection_id = ?",
                               (collection_id,)).fetchone()
        if row is None:
            return None
        variables = tuple(
            LiveVariable(n, None if m else v, bool(m)) for n, v, m in self._db.execute(
                "SELECT name, value, masked FROM collection_variables WHERE collection_id = ? ORDER BY rowid",
                (collection_id,)))
        return CollectionSettings(collection_id, row[0], variables)

    def set_collection_variables(self, collection_id: str, precedence: int,
                                 variables: list[tuple[str, str, bool]]) -> None:
        """Writes replace the whole array, as SMS_CollectionSettings does; empty removes the settings."""
        if collection_id.startswith("SMS"):
            raise PermanentSiteError(f"{collection_id} is a built-in collection; it cannot hold variables")
        refuse_duplicate_variables(variables)
        sealed = self._seal_variables(variables)
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM collections WHERE id = ?", (collection_id,)).fetchone():
                raise PermanentSiteError(f"collection {collection_id} does not exist")
            db.execute("DELETE FROM collection_variables WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM collection_settings WHERE collection_id = ?", (collection_id,))
            if variables:
                db.execute("INSERT INTO collection_settings VALUES (?, ?)", (collection_id, precedence))
                db.executemany("INSERT INTO collection_variables VALUES (?, ?, ?, ?)",
                               [(collection_id, n, v, int(m)) for n, v, m in sealed])

    def get_machine_settings(self, resource_id: int) -> MachineSettings | None:
        rows = self._db.execute("SELECT name, value, masked FROM computer_variables WHERE resource_id = ? "
                                "ORDER BY rowid", (resource_id,)).fetchall()
        if not rows:
            return None
        return MachineSettings(resource_id, tuple(LiveVariable(n, None if m else v, bool(m)) for n, v, m in rows))

    def set_computer_variables(self, resource_id: int, variables: list[tuple[str, str, bool]]) -> None:
        if len(variables) > MAX_VARIABLES_PER_COMPUTER:
            raise PermanentSiteError(f"a computer can hold at most {MAX_VARIABLES_PER_COMPUTER} variables")
        refuse_duplicate_variables(variables)
        sealed = self._seal_variables(variables)
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM computers WHERE resource_id = ?", (resource_id,)).fetchone():
                raise PermanentSiteError(f"computer {resource_id} does not exist")
            db.execute("DELETE FROM computer_variables WHERE resource_id = ?", (resource_id,))
            db.executemany("INSERT INTO computer_variables VALUES (?, ?, ?, ?)",
                           [(resource_id, n, v, int(m)) for n, v, m in sealed])
