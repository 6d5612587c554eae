"""The embedded site's file: its schema and migrations, and checking and backing it up without trusting it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.site.errors import PermanentSiteError
from reconciler.storage import FileCheck, backup_file, check_file

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
    # 4: devices are looked up one at a time (by name, and their collections), never all read
    """
    CREATE INDEX computers_name ON computers (name);
    CREATE INDEX collection_members_resource ON collection_members (resource_id);
    """,
]


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
    backup_file(path, target, force, lambda detail: PermanentSiteError(damaged_message(path, detail)),
                PermanentSiteError)
