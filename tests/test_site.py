"""The embedded site enforces what a ConfigMgr primary site enforces."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from reconciler.site.embedded import BUILT_IN_COLLECTIONS, MIGRATIONS, EmbeddedSite, SiteError
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import DeploymentRecord, PackageType, TaskSequenceRecord
from reconciler.state import StateError, StateStore

SEQUENCE = '<sequence version="3.10"><referenceList><reference package="PS100001" /></referenceList></sequence>'


@pytest.fixture
def site(tmp_path: Path) -> EmbeddedSite:
    with EmbeddedSite(tmp_path / "site.db", "PS1") as s:
        yield s


def test_ids_are_site_code_and_five_hex_digits(site: EmbeddedSite) -> None:
    ids = [site.add_package(f"Package {i}", PackageType.PACKAGE) for i in range(20)]
    assert all(re.fullmatch(r"PS1[0-9A-F]{5}", i) for i in ids)
    assert ids[15] == "PS100010" and len(set(ids)) == 20


def test_built_in_collections_have_their_real_ids(site: EmbeddedSite) -> None:
    live = site.read()
    assert live.collections["SMS00001"].name == "All Systems" and live.collections["SMS00001"].built_in
    assert live.collections["SMS000US"].name == "All Unknown Computers"
    assert set(BUILT_IN_COLLECTIONS) <= set(live.collections)


def test_database_is_wal_and_schema_versioned(site: EmbeddedSite, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "site.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.commit()
    db.close()
    with pytest.raises(SiteError, match="upgrade the tool"):
        EmbeddedSite(tmp_path / "site.db")


def test_state_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    StateStore(tmp_path / "state.db").close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="upgrade the tool"):
        StateStore(tmp_path / "state.db")


def test_masked_variables_are_write_only(site: EmbeddedSite) -> None:
    collection = site.add_collection("OSD Pilot", 3)
    site.set_collection_variables(collection, 2, [("OSDPlain", "visible", False), ("OSDSecret", "hunter2", True)])
    settings = site.read().collection_settings[collection]
    values = {v.name: (v.value, v.masked) for v in settings.variables}
    assert values == {"OSDPlain": ("visible", False), "OSDSecret": (None, True)}
    assert site.get_collection_settings(collection).variables[1].value is None  # type: ignore[union-attr]


def test_built_in_collections_cannot_hold_variables(site: EmbeddedSite) -> None:
    with pytest.raises(SiteError, match="built-in"):
        site.set_collection_variables("SMS00001", 1, [("OSDX", "1", False)])


def test_a_computer_holds_at_most_1000_variables(site: EmbeddedSite) -> None:
    rid = site.add_computer("LAB-PC-001")
    site.set_computer_variables(rid, [(f"V{i}", "x", False) for i in range(1000)])
    with pytest.raises(SiteError, match="at most 1000"):
        site.set_computer_variables(rid, [(f"V{i}", "x", False) for i in range(1001)])


def test_variable_names_are_case_insensitive(site: EmbeddedSite) -> None:
    rid = site.add_computer("LAB-PC-002")
    with pytest.raises(PermanentSiteError, match="'osdname' is given twice"):
        site.set_computer_variables(rid, [("OSDName", "a", False), ("osdname", "b", False)])
    assert site.get_machine_settings(rid) is None  # refused whole: nothing was written


def test_set_sequence_refreshes_references(site: EmbeddedSite) -> None:
    ts_id = site.create_task_sequence(TaskSequenceRecord(id=None, name="Refs", sequence=SEQUENCE))
    assert site.get_task_sequence(ts_id).references == ("PS100001",)  # type: ignore[union-attr]
    with pytest.raises(SiteError, match="1 to 50"):
        site.create_task_sequence(TaskSequenceRecord(id=None, name="x" * 51, sequence=SEQUENCE))


def test_deployment_target_cannot_change_in_place(site: EmbeddedSite) -> None:
    ts_id = site.create_task_sequence(TaskSequenceRecord(id=None, name="TS", sequence=SEQUENCE))
    first = site.add_collection("A")
    second = site.add_collection("B")
    dep = site.create_deployment(DeploymentRecord(id=None, name="TS_A", package_id=ts_id, collection_id=first))
    with pytest.raises(SiteError, match="replace it"):
        site.update_deployment(dep, DeploymentRecord(id=None, name="TS_A", package_id=ts_id, collection_id=second))
    with pytest.raises(SiteError, match="still deployed"):
        site.delete_task_sequence(ts_id)


def test_deleting_a_collection_deletes_its_variables(site: EmbeddedSite) -> None:
    collection = site.add_collection("Temporary")
    site.set_collection_variables(collection, 1, [("OSDX", "1", False)])
    site.delete_collection(collection)
    assert collection not in site.read().collection_settings


def test_an_older_site_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('site_code', 'OLD'), ('next_id', '2')")
    db.execute("INSERT INTO task_sequences (id, name, record) VALUES (?, ?, ?)",
               ("OLD00001", "Old", '{"name": "Old", "sequence": "<sequence version=\\"3.10\\" />", "references": []}'))
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with EmbeddedSite(path) as site:
        record = site.get_task_sequence("OLD00001")
        assert record is not None and record.sequence == '<sequence version="3.10" />'
        assert site.site_code == "OLD"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
