"""EmbeddedSite: a ConfigMgr primary site in one SQLite file.

It enforces what a real site enforces and the product depends on: IDs in the site's own format
(``PS100012``), built-in collections with their real IDs that cannot hold variables, write-only
masked variables, at most 1,000 variables per computer, task sequences stored as task sequence XML
with their reference list refreshed on every write (as ``SetSequence`` does), and per-DP content
state. Every mutation is one transaction; the database runs in WAL mode so a reader (a plan) never
blocks on a writer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from reconciler.collector import paused
from reconciler.errors import ReconcilerError
from reconciler.site.records import (
    MAX_SEQUENCE_BYTES,
    Collection,
    CollectionSettings,
    Computer,
    ContentState,
    ContentStatus,
    DeploymentRecord,
    DistributionPoint,
    DistributionPointGroup,
    LiveState,
    LiveVariable,
    MachineSettings,
    Package,
    PackageType,
    TaskSequenceRecord,
    VerificationSettings,
)
from reconciler.storage import FileCheck, backup_file, check_file, connect, migrate, transaction
from reconciler.tsxml.sequence import reference_ids, seal_secrets

#: Built-in collections and their IDs (SMS_Collection.IsBuiltIn).
BUILT_IN_COLLECTIONS = {
    "SMS00001": "All Systems",
    "SMS00002": "All Users",
    "SMS00003": "All User Groups",
    "SMS00004": "All Users and User Groups",
    "SMSDM001": "All Mobile Devices",
    "SMSDM003": "All Desktop and Server Clients",
    "SMS000US": "All Unknown Computers",
    "SMS000PS": "All Provisioning Devices",
}

MAX_VARIABLES_PER_COMPUTER = 1000

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE collections (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, member_count INTEGER NOT NULL DEFAULT 0,
        has_site_systems INTEGER NOT NULL DEFAULT 0, built_in INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE distribution_points (name TEXT PRIMARY KEY COLLATE NOCASE, site_code TEXT NOT NULL);
    CREATE TABLE dp_groups (name TEXT PRIMARY KEY COLLATE NOCASE);
    CREATE TABLE dp_group_members (grp TEXT NOT NULL, dp TEXT NOT NULL, PRIMARY KEY (grp, dp));
    CREATE TABLE dp_group_collections (grp TEXT NOT NULL, collection_id TEXT NOT NULL,
        PRIMARY KEY (grp, collection_id));
    CREATE TABLE packages (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
        source_version INTEGER NOT NULL DEFAULT 1, share_enabled INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE content_status (
        package_id TEXT NOT NULL, dp TEXT NOT NULL COLLATE NOCASE, state INTEGER NOT NULL,
        installed_version INTEGER NOT NULL, PRIMARY KEY (package_id, dp));
    CREATE TABLE task_sequences (id TEXT PRIMARY KEY, name TEXT NOT NULL, record TEXT NOT NULL);
    CREATE INDEX task_sequences_name ON task_sequences (name);
    CREATE TABLE deployments (
        id TEXT PRIMARY KEY, package_id TEXT NOT NULL, collection_id TEXT NOT NULL, record TEXT NOT NULL);
    CREATE INDEX deployments_target ON deployments (package_id, collection_id);
    CREATE TABLE collection_settings (collection_id TEXT PRIMARY KEY, precedence INTEGER NOT NULL);
    CREATE TABLE collection_variables (
        collection_id TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE, value TEXT NOT NULL,
        masked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (collection_id, name));
    CREATE TABLE computers (resource_id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE);
    CREATE TABLE computer_variables (
        resource_id INTEGER NOT NULL, name TEXT NOT NULL COLLATE NOCASE, value TEXT NOT NULL,
        masked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (resource_id, name));
    """,
    # 2: deployment verification settings and collection membership
    """
    CREATE TABLE site_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO site_settings VALUES ('default_size', '100'), ('maximum_size', '0'), ('site_systems', 'block');
    CREATE TABLE collection_members (collection_id TEXT NOT NULL, resource_id INTEGER NOT NULL,
        PRIMARY KEY (collection_id, resource_id));
    """,
    # 3: the sequence XML in a column of its own: reading a site no longer decodes it from JSON
    """
    ALTER TABLE task_sequences ADD COLUMN sequence TEXT NOT NULL DEFAULT '';
    UPDATE task_sequences SET sequence = json_extract(record, '$.sequence'),
        record = json_remove(record, '$.sequence');
    """,
]


class SiteError(ReconcilerError):
    """The site refused an operation, as a real provider would; the message says why."""


def damaged_message(path: Path, detail: str) -> str:
    return (f"embedded site {path} is damaged: {detail}. Restore it from a backup (copy the backup over it while "
            f"no reconcile runs), or run 'reconcile site check --site {path}' to see what is wrong")


def _site_counts(db: sqlite3.Connection) -> dict[str, int]:
    """What an embedded site holds, by table (``reconcile site check``)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    counts: dict[str, int] = {}
    for table, key in (("task_sequences", "task sequences"), ("deployments", "deployments"),
                       ("collections", "collections"), ("packages", "packages"),
                       ("distribution_points", "distribution points"), ("collection_variables", "collection variables"),
                       ("computer_variables", "computer variables")):
        if table in tables:
            counts[key] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return counts


def check_site(path: Path) -> FileCheck:
    """``reconcile site check``: integrity, schema version and what the site holds, read-only."""
    return check_file(path, len(MIGRATIONS), _site_counts)


def backup_site(path: Path, target: Path, force: bool = False) -> None:
    """``reconcile site backup``: a consistent copy of the embedded site, safe while it is written to."""
    backup_file(path, target, force, lambda detail: SiteError(damaged_message(path, detail)), SiteError)


def _record_json(record: Any) -> str:
    data = asdict(record)
    data.pop("id", None)
    data.pop("sequence", None)
    return json.dumps(data, sort_keys=True)


def _ts_from_row(ts_id: str, text: str, sequence: str) -> TaskSequenceRecord:
    data = json.loads(text)
    data["references"] = tuple(data.get("references") or ())
    return TaskSequenceRecord(id=ts_id, sequence=sequence, **data)


def _deployment_from_row(dep_id: str, text: str) -> DeploymentRecord:
    data = json.loads(text)
    data["assigned_schedule"] = tuple(data.get("assigned_schedule") or ())
    return DeploymentRecord(id=dep_id, **data)


_TS_FIELDS = {f.name for f in fields(TaskSequenceRecord)}

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


def sequence_references(xml: str) -> tuple[str, ...]:
    try:
        return reference_ids(xml)
    except ReconcilerError as exc:
        raise SiteError(f"the sequence XML is not valid: {exc}") from None


class EmbeddedSite:
    """A ConfigMgr primary site stored in SQLite."""

    def __init__(self, path: str | Path, site_code: str | None = None) -> None:
        self.path = Path(path)
        existed = self.path.exists()
        if not existed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(self.path, self._damaged, check=existed)
        self._migrate()
        stored = self._meta("site_code")
        if stored is None:
            code = (site_code or "PS1").upper()
            if not (len(code) == 3 and code.isalnum()):
                raise SiteError(f"site code {code!r} must be three letters or digits, such as PS1")
            with self._tx() as db:
                # Checked again under the write lock: another process may have created the site meanwhile.
                row = db.execute("SELECT value FROM meta WHERE key = 'site_code'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('site_code', ?), ('next_id', '1')", (code,))
                    db.executemany("INSERT INTO collections (id, name, built_in) VALUES (?, ?, 1)",
                                   BUILT_IN_COLLECTIONS.items())
            stored = self._meta("site_code")
        self.site_code = stored
        self._seal_stored_secrets()

    # -- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddedSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _damaged(self, detail: str) -> SiteError:
        return SiteError(damaged_message(self.path, detail))

    def manageable(self) -> dict[str, int]:
        """How many objects of the kinds this tool manages the site holds (task sequences, deployments,
        collections and computers with variables): cheap counts, without reading the site."""
        return {
            "task sequence(s)": self._db.execute("SELECT COUNT(*) FROM task_sequences").fetchone()[0],
            "deployment(s)": self._db.execute("SELECT COUNT(*) FROM deployments").fetchone()[0],
            "collection(s) with variables": self._db.execute(
                "SELECT COUNT(DISTINCT collection_id) FROM collection_variables").fetchone()[0],
            "computer(s) with variables": self._db.execute(
                "SELECT COUNT(DISTINCT resource_id) FROM computer_variables").fetchone()[0],
        }

    def _migrate(self) -> None:
        migrate(self._db, MIGRATIONS, lambda version: SiteError(
            f"{self.path} has site schema version {version}; this tool knows up to {len(MIGRATIONS)}: "
            "upgrade the tool"))

    def _tx(self) -> Any:
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

    # -- inventory (what a console administrator creates outside this tool) -----------------------

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
            raise SiteError(f"{collection_id} is a built-in collection and cannot be deleted")
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

    def add_dp_group(self, name: str, members: list[str], collections: list[str] = ()) -> None:  # type: ignore[assignment]
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

    def changed_since_read(self) -> bool:
        """Whether another connection (a console, another tool) wrote to the site since our last look.

        SQLite's data_version changes only for commits made by other connections, so a controller tick
        with no new commit and no live change can skip the plan entirely.
        """
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        changed = version != getattr(self, "_seen_version", None)
        self._seen_version = version
        return changed

    def verification_settings(self) -> VerificationSettings:
        settings = dict(self._db.execute("SELECT key, value FROM site_settings"))
        return VerificationSettings(int(settings["default_size"]), int(settings["maximum_size"]),
                                    settings["site_systems"])

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
            raise SiteError("collection sizes cannot be negative")
        if new.maximum_size and new.maximum_size <= new.default_size:
            raise SiteError(f"the maximum size ({new.maximum_size}) must be larger than the default size "
                            f"({new.default_size}), or 0 to turn it off")
        if new.site_systems not in ("block", "warn"):
            raise SiteError("collections with site system servers: 'block' or 'warn'")
        with self._tx() as db:
            db.executemany("UPDATE site_settings SET value = ? WHERE key = ?",
                           [(str(new.default_size), "default_size"), (str(new.maximum_size), "maximum_size"),
                            (new.site_systems, "site_systems")])
        return new

    def add_members(self, collection_id: str, resource_ids: list[int]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO collection_members VALUES (?, ?)",
                           [(collection_id, r) for r in resource_ids])
            count = db.execute("SELECT COUNT(*) FROM collection_members WHERE collection_id = ?",
                               (collection_id,)).fetchone()[0]
            db.execute("UPDATE collections SET member_count = MAX(member_count, ?) WHERE id = ?",
                       (count, collection_id))

    def add_computer(self, name: str, resource_id: int | None = None) -> int:
        with self._tx() as db:
            if resource_id is None:
                row = db.execute("SELECT COALESCE(MAX(resource_id), 16777219) + 1 FROM computers").fetchone()
                resource_id = int(row[0])
            db.execute("INSERT INTO computers VALUES (?, ?)", (resource_id, name))
        return resource_id

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> LiveState:
        with paused():
            return self._read()

    def _read(self) -> LiveState:
        db = self._db
        state = LiveState(site_code=self.site_code)
        db.execute("BEGIN")  # one consistent snapshot (WAL readers do not block writers)
        try:
            for row in db.execute("SELECT id, name, member_count, has_site_systems, built_in FROM collections"):
                state.collections[row[0]] = Collection(row[0], row[1], row[2], bool(row[3]), bool(row[4]))
            for name, code in db.execute("SELECT name, site_code FROM distribution_points"):
                state.distribution_points[name] = DistributionPoint(name, code)
            members: dict[str, list[str]] = {}
            for grp, dp in db.execute("SELECT grp, dp FROM dp_group_members ORDER BY grp, dp"):
                members.setdefault(grp, []).append(dp)
            assoc: dict[str, list[str]] = {}
            for grp, cid in db.execute("SELECT grp, collection_id FROM dp_group_collections ORDER BY 1, 2"):
                assoc.setdefault(grp, []).append(cid)
            for (name,) in db.execute("SELECT name FROM dp_groups"):
                state.dp_groups[name] = DistributionPointGroup(name, tuple(members.get(name, ())),
                                                               tuple(assoc.get(name, ())))
            for pid, name, ptype, version, share in db.execute("SELECT * FROM packages"):
                state.packages[pid] = Package(pid, name, PackageType(ptype), version, bool(share))
            for pid, dp, st, version in db.execute("SELECT * FROM content_status"):
                state.content[(pid, dp)] = ContentStatus(pid, dp, ContentState(st), version)
            for ts_id, record, sequence in db.execute("SELECT id, record, sequence FROM task_sequences"):
                state.task_sequences[ts_id] = _ts_from_row(ts_id, record, sequence)
            for dep_id, record in db.execute("SELECT id, record FROM deployments"):
                state.deployments[dep_id] = _deployment_from_row(dep_id, record)
            collection_vars: dict[str, list[LiveVariable]] = {}
            for cid, name, value, masked in db.execute(
                    "SELECT collection_id, name, value, masked FROM collection_variables ORDER BY 1, rowid"):
                collection_vars.setdefault(cid, []).append(LiveVariable(name, None if masked else value, bool(masked)))
            for cid, precedence in db.execute("SELECT collection_id, precedence FROM collection_settings"):
                state.collection_settings[cid] = CollectionSettings(cid, precedence,
                                                                    tuple(collection_vars.get(cid, ())))
            for rid, name in db.execute("SELECT resource_id, name FROM computers"):
                state.computers[rid] = Computer(rid, name)
            machine_vars: dict[int, list[LiveVariable]] = {}
            for rid, name, value, masked in db.execute(
                    "SELECT resource_id, name, value, masked FROM computer_variables ORDER BY 1, rowid"):
                machine_vars.setdefault(rid, []).append(LiveVariable(name, None if masked else value, bool(masked)))
            for rid, variables in machine_vars.items():
                state.machine_settings[rid] = MachineSettings(rid, tuple(variables))
            settings = dict(db.execute("SELECT key, value FROM site_settings"))
            state.verification = VerificationSettings(int(settings["default_size"]), int(settings["maximum_size"]),
                                                      settings["site_systems"])
            members: dict[int, list[str]] = {}
            for cid, rid in db.execute("SELECT collection_id, resource_id FROM collection_members ORDER BY 1"):
                members.setdefault(rid, []).append(cid)
            state.memberships = {rid: tuple(c) for rid, c in members.items()}
        finally:
            db.execute("COMMIT")
        return state

    # -- task sequences --------------------------------------------------------------------------

    def get_task_sequence(self, ts_id: str) -> TaskSequenceRecord | None:
        row = self._db.execute("SELECT record, sequence FROM task_sequences WHERE id = ?", (ts_id,)).fetchone()
        return _ts_from_row(ts_id, row[0], row[1]) if row else None

    def find_task_sequences(self, name: str) -> list[TaskSequenceRecord]:
        rows = self._db.execute("SELECT id, record, sequence FROM task_sequences WHERE name = ?", (name,)).fetchall()
        return [_ts_from_row(i, r, s) for i, r, s in rows]

    def _check_ts(self, record: TaskSequenceRecord) -> TaskSequenceRecord:
        if not record.name or len(record.name) > 50:
            raise SiteError(f"task sequence name {record.name!r} must be 1 to 50 characters")
        if len(record.description) > 512:
            raise SiteError("task sequence description is longer than 512 characters")
        if len(record.sequence.encode("utf-8")) > MAX_SEQUENCE_BYTES:
            raise SiteError(f"the sequence of {record.name!r} is larger than 2 MB; ConfigMgr refuses it")
        if record.boot_image_id and record.boot_image_id not in self._package_ids(PackageType.BOOT_IMAGE):
            raise SiteError(f"boot image {record.boot_image_id} does not exist")
        data = {f: getattr(record, f) for f in _TS_FIELDS}
        data["references"] = sequence_references(record.sequence)  # SetSequence refreshes references
        data["sequence"] = seal_secrets(record.sequence, self._seal)
        return TaskSequenceRecord(**data)

    # -- secrets: write-only, as ConfigMgr keeps them ----------------------------------------------

    def _seal_key(self) -> bytes:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'seal_key'").fetchone()
        if row is None:
            with self._tx() as db:
                db.execute("INSERT OR IGNORE INTO meta VALUES ('seal_key', ?)", (secrets.token_hex(32),))
            row = self._db.execute("SELECT value FROM meta WHERE key = 'seal_key'").fetchone()
        return bytes.fromhex(row[0])

    def _seal(self, value: str) -> str:
        """A step password, product key, PIN or masked value as this site keeps it: sealed, never readable.

        ConfigMgr stores them encrypted with the site's key and gives them to clients only; ExportXml leaves
        them empty. The embedded site keeps a keyed hash instead, so even its own file holds no clear value.
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
        never needs it.
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

    def _package_ids(self, package_type: PackageType) -> set[str]:
        rows = self._db.execute("SELECT id FROM packages WHERE type = ?", (package_type.value,))
        return {r[0] for r in rows}

    def create_task_sequence(self, record: TaskSequenceRecord) -> str:
        record = self._check_ts(record)
        with self._tx() as db:
            ts_id = self._new_id(db)
            db.execute("INSERT INTO task_sequences (id, name, record, sequence) VALUES (?, ?, ?, ?)",
                       (ts_id, record.name, _record_json(record), record.sequence))
            db.execute("INSERT INTO packages VALUES (?, ?, ?, 1, 0)", (ts_id, record.name, "TaskSequence"))
        return ts_id

    def update_task_sequence(self, ts_id: str, record: TaskSequenceRecord) -> None:
        record = self._check_ts(record)
        with self._tx() as db:
            cur = db.execute("UPDATE task_sequences SET name = ?, record = ?, sequence = ? WHERE id = ?",
                             (record.name, _record_json(record), record.sequence, ts_id))
            if cur.rowcount == 0:
                raise SiteError(f"task sequence {ts_id} does not exist")
            db.execute("UPDATE packages SET name = ? WHERE id = ?", (record.name, ts_id))

    def _patch_ts(self, ts_id: str, **changes: Any) -> None:
        with self._tx() as db:
            row = db.execute("SELECT record FROM task_sequences WHERE id = ?", (ts_id,)).fetchone()
            if row is None:
                raise SiteError(f"task sequence {ts_id} does not exist")
            data = json.loads(row[0])
            data.update(changes)
            db.execute("UPDATE task_sequences SET record = ? WHERE id = ?", (json.dumps(data, sort_keys=True), ts_id))

    def set_task_sequence_enabled(self, ts_id: str, enabled: bool) -> None:
        self._patch_ts(ts_id, enabled=enabled)

    def move_task_sequence(self, ts_id: str, folder: str | None) -> None:
        self._patch_ts(ts_id, folder=folder)

    def delete_task_sequence(self, ts_id: str) -> None:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM deployments WHERE package_id = ?", (ts_id,)).fetchone():
                raise SiteError(f"task sequence {ts_id} is still deployed; delete its deployments first")
            db.execute("DELETE FROM task_sequences WHERE id = ?", (ts_id,))
            db.execute("DELETE FROM packages WHERE id = ?", (ts_id,))
            db.execute("DELETE FROM content_status WHERE package_id = ?", (ts_id,))

    # -- deployments -----------------------------------------------------------------------------

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        row = self._db.execute("SELECT record FROM deployments WHERE id = ?", (deployment_id,)).fetchone()
        return _deployment_from_row(deployment_id, row[0]) if row else None

    def find_deployments(self, package_id: str, collection_id: str) -> list[DeploymentRecord]:
        rows = self._db.execute("SELECT id, record FROM deployments WHERE package_id = ? AND collection_id = ?",
                                (package_id, collection_id)).fetchall()
        return [_deployment_from_row(i, r) for i, r in rows]

    def _check_deployment(self, record: DeploymentRecord) -> None:
        if not self._db.execute("SELECT 1 FROM task_sequences WHERE id = ?", (record.package_id,)).fetchone():
            raise SiteError(f"task sequence {record.package_id} does not exist")
        if not self._db.execute("SELECT 1 FROM collections WHERE id = ?", (record.collection_id,)).fetchone():
            raise SiteError(f"collection {record.collection_id} does not exist")
        if len(record.assigned_schedule) > 15:
            raise SiteError("a deployment holds at most 15 schedule tokens")

    def create_deployment(self, record: DeploymentRecord) -> str:
        self._check_deployment(record)
        with self._tx() as db:
            dep_id = self._new_id(db)
            db.execute("INSERT INTO deployments VALUES (?, ?, ?, ?)",
                       (dep_id, record.package_id, record.collection_id, _record_json(record)))
        return dep_id

    def update_deployment(self, deployment_id: str, record: DeploymentRecord) -> None:
        current = self.get_deployment(deployment_id)
        if current is None:
            raise SiteError(f"deployment {deployment_id} does not exist")
        if (current.package_id, current.collection_id) != (record.package_id, record.collection_id):
            # SMS_Advertisement.PackageID and CollectionID are read-only after creation.
            raise SiteError("the task sequence and collection of a deployment cannot be changed; replace it")
        self._check_deployment(record)
        with self._tx() as db:
            db.execute("UPDATE deployments SET record = ? WHERE id = ?", (_record_json(record), deployment_id))

    def delete_deployment(self, deployment_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM deployments WHERE id = ?", (deployment_id,))

    # -- content ---------------------------------------------------------------------------------

    def content_status(self, package_id: str) -> dict[str, ContentStatus]:
        rows = self._db.execute("SELECT dp, state, installed_version FROM content_status WHERE package_id = ?",
                                (package_id,))
        return {dp: ContentStatus(package_id, dp, ContentState(st), v) for dp, st, v in rows}

    def _package_version(self, db: sqlite3.Connection, package_id: str) -> int:
        row = db.execute("SELECT source_version FROM packages WHERE id = ?", (package_id,)).fetchone()
        if row is None:
            raise SiteError(f"package {package_id} does not exist")
        return int(row[0])

    def _check_dps(self, db: sqlite3.Connection, dps: list[str]) -> None:
        known = {r[0].casefold() for r in db.execute("SELECT name FROM distribution_points")}
        missing = [dp for dp in dps if dp.casefold() not in known]
        if missing:
            raise SiteError(f"distribution point(s) {', '.join(missing)} do not exist")

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

    # -- variables -------------------------------------------------------------------------------

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
            raise SiteError(f"{collection_id} is a built-in collection; it cannot hold variables")
        sealed = self._seal_variables(variables)
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM collections WHERE id = ?", (collection_id,)).fetchone():
                raise SiteError(f"collection {collection_id} does not exist")
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
            raise SiteError(f"a computer can hold at most {MAX_VARIABLES_PER_COMPUTER} variables")
        sealed = self._seal_variables(variables)
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM computers WHERE resource_id = ?", (resource_id,)).fetchone():
                raise SiteError(f"computer {resource_id} does not exist")
            db.execute("DELETE FROM computer_variables WHERE resource_id = ?", (resource_id,))
            db.executemany("INSERT INTO computer_variables VALUES (?, ?, ?, ?)",
                           [(resource_id, n, v, int(m)) for n, v, m in sealed])
