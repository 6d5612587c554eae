"""Secrets in the embedded site: write-only, as ConfigMgr keeps them.

ConfigMgr stores step passwords, product keys, PINs and masked variable values encrypted with the
site's key and gives them to clients only; ``ExportXml`` leaves them empty. The embedded site keeps a
keyed hash instead, so even its own file holds no clear value.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from reconciler.errors import ReconcilerError
from reconciler.site.embedded.database import SiteDatabase
from reconciler.tsxml.sequence import seal_secrets

#: How a sealed secret looks in the site's file and in a sequence read from it: a keyed hash, never the value.
SEALED_PREFIX = "sealed:hmac-sha256:"


def _sealed_in(sequence: str, name: str, sealed: str) -> bool:
    """Whether a step variable (by property or name) or a secret dynamic variable (by name) holds ``sealed``."""
    from reconciler.tsxml.xmltext import parse

    for var in parse(sequence).iter("variable"):
        if name in (var.get("property"), var.get("name")) and var.text == sealed:
            return True
        if var.get("property") == "Rules" and sealed in (var.text or ""):
            rules = parse((var.text or "").strip(), where="SetDynamicVariables rules")
            if any(v.get("Name") == name and v.text == sealed for v in rules.iter("Variable")):
                return True
    return False


class Sealing(SiteDatabase):
    """The site's sealing key, sealing values on write, and telling whether a secret was received."""

    _key: bytes

    def _seal_key(self) -> bytes:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'seal_key'").fetchone()
        if row is None:
            with self._tx() as db:
                db.execute("INSERT OR IGNORE INTO meta VALUES ('seal_key', ?)", (secrets.token_hex(32),))
            row = self._db.execute("SELECT value FROM meta WHERE key = 'seal_key'").fetchone()
        return bytes.fromhex(row[0])

    def _seal(self, value: str) -> str:
        """A step password, product key, PIN or masked value as this site keeps it: sealed, never readable.

        A value that is already sealed (a sequence read from this site and written back, as a console edit
        does) is kept as it is.
        """
        if value.startswith(SEALED_PREFIX) and len(value) == len(SEALED_PREFIX) + 64:
            return value
        return SEALED_PREFIX + hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def holds_secret(self, object_id: str | int, name: str | None, value: str) -> bool:
        """Whether the site received ``value`` for a secret, without the site keeping it in clear.

        ``object_id`` is a task sequence (``name``: the property or variable of a step, such as
        ``DomainPassword``, or a secret dynamic variable's name), a collection ID or a computer's resource ID
        (``name``: a masked variable); ``None`` for any secret of the object. For tests and diagnostics: a plan
        never needs it, and it is no part of the ``Site`` protocol.
        """
        sealed = self._seal(value)
        if isinstance(object_id, int):
            rows = self._db.execute("SELECT name, value FROM computer_variables WHERE resource_id = ? AND masked = 1",
                                    (object_id,)).fetchall()
        else:
            row = self._db.execute("SELECT sequence FROM task_sequences WHERE id = ?", (object_id,)).fetchone()
            if row is not None:
                return sealed in row[0] if name is None else _sealed_in(row[0], name, sealed)
            rows = self._db.execute("SELECT name, value FROM collection_variables WHERE collection_id = ? AND "
                                    "masked = 1", (object_id,)).fetchall()
        return any(v == sealed and (name is None or n.casefold() == name.casefold()) for n, v in rows)

    def _seal_variables(self, variables: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
        return [(n, self._seal(v) if m else v, m) for n, v, m in variables]

    def _seal_stored_secrets(self) -> None:
        """Once per site file: seal the secrets that earlier versions kept in clear in sequences and variables."""
        self._key = self._seal_key()
        if self._meta("secrets_sealed") is not None:
            return
        self._db.execute("PRAGMA secure_delete = ON")  # the clear values leave the file, not just the tables
        with self._tx() as db:
            if db.execute("SELECT 1 FROM meta WHERE key = 'secrets_sealed'").fetchone():
                return
            for ts_id, sequence in db.execute("SELECT id, sequence FROM task_sequences").fetchall():
                try:
                    sealed = seal_secrets(sequence, self._seal)
                except ReconcilerError:
                    continue  # a sequence the codec cannot read; the tool never wrote it
                if sealed != sequence:
                    db.execute("UPDATE task_sequences SET sequence = ? WHERE id = ?", (sealed, ts_id))
            for table in ("collection_variables", "computer_variables"):
                for rowid, value in db.execute(f"SELECT rowid, value FROM {table} WHERE masked = 1").fetchall():
                    db.execute(f"UPDATE {table} SET value = ? WHERE rowid = ?", (self._seal(value), rowid))
            db.execute("INSERT INTO meta VALUES ('secrets_sealed', '1')")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
