"""A site with 50,000 devices: a plan and ``vars effective`` read only the devices their manifests name.

A real hierarchy has hundreds of thousands of devices; a read holds only the computers that have
variables, and every other device is looked up by name or ResourceID when a manifest names it. The
statements the embedded site runs are counted on its real connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.effective import effective_variables
from reconciler.plan.actions import Verb
from reconciler.plan.planner import make_plan
from reconciler.site import create_site
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import Computer, LiveState
from reconciler.source.loader import load
from reconciler.state import StateStore

DEVICES = 50_000
HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}


@pytest.fixture(scope="module")
def large_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo inventory and 50,000 more devices; two of them hold variables, one is in OSD Lab."""
    root = tmp_path_factory.mktemp("devices")
    site = create_site(root / "site.db", demo=True)
    assert isinstance(site, EmbeddedSite)
    try:
        ids = site.add_computers(f"PC-{i:05d}" for i in range(DEVICES))
        site.set_computer_variables(ids[7], [("OSDLive", "1", False)])
        site.set_computer_variables(ids[8], [("OSDLive", "2", False)])
        lab = site.read().collection_by_name("OSD Lab")[0].id
        site.add_members(lab, [ids[31337]])
    finally:
        site.close()
    manifests = root / "manifests"
    manifests.mkdir()
    (manifests / "vars.yaml").write_text(yaml.safe_dump_all([
        {**HEAD, "kind": "ComputerVariables", "metadata": {"name": "pc-31337"},
         "spec": {"computer": {"name": "pc-31337"}, "variables": [{"name": "OSDRole", "value": "kiosk"}]}},
        {**HEAD, "kind": "ComputerVariables", "metadata": {"name": "pc-00008"},
         "spec": {"computer": {"resourceId": ids[8]}, "variables": [{"name": "OSDLive", "value": "3"}]}},
        {**HEAD, "kind": "CollectionVariables", "metadata": {"name": "lab"},
         "spec": {"collection": {"name": "OSD Lab"}, "priority": 3,
                  "variables": [{"name": "OSDRing", "value": "lab"}]}},
    ], sort_keys=False))
    return root


@pytest.fixture
def traced(large_site: Path) -> Iterator[tuple[EmbeddedSite, list[str]]]:
    site = EmbeddedSite(large_site / "site.db")
    statements: list[str] = []
    site._db.set_trace_callback(statements.append)  # what the site asks SQLite, as it runs
    try:
        yield site, statements
    finally:
        site.close()


def device_statements(statements: list[str]) -> list[str]:
    return [s for s in statements if re.search(r"\b(computers|collection_members)\b", s)]


def assert_no_device_scan(statements: list[str]) -> None:
    for sql in device_statements(statements):
        assert re.search(r"FROM (computers|collection_members) WHERE", sql), f"reads every device: {sql}"


def test_a_plan_reads_only_the_devices_its_manifests_name(large_site: Path,
                                                          traced: tuple[EmbeddedSite, list[str]]) -> None:
    site, statements = traced
    desired = load(large_site / "manifests")
    state = StateStore(large_site / "state.db")
    try:
        live = site.read()
        assert set(live.computers) == set(live.machine_settings) and len(live.computers) == 2
        plan = make_plan(desired, live, state, adopt=True)  # PC-00008's live variable is taken over
    finally:
        state.close()
    assert not plan.blocked, [b.message for b in plan.blocked]
    assert {a.ref.name for a in plan.actions if a.verb is Verb.SET_VARIABLES} == {"pc-31337", "pc-00008", "lab"}
    assert_no_device_scan(statements)
    assert len(device_statements(statements)) <= 6, device_statements(statements)
    assert len(live.computers) == 3  # the two with variables and PC-31337, looked up by name


def test_vars_effective_looks_up_one_device(large_site: Path, traced: tuple[EmbeddedSite, list[str]]) -> None:
    site, statements = traced
    desired = load(large_site / "manifests")
    computer, variables = effective_variables("PC-31337", desired, site.read())
    assert computer.name == "PC-31337"
    assert {v.name: (v.value, v.winner.scope) for v in variables} == {
        "OSDRole": ("kiosk", "computer"), "OSDRing": ("lab", "collection")}  # its collection, looked up too
    assert_no_device_scan(statements)
    assert len(device_statements(statements)) <= 6, device_statements(statements)


def test_a_state_built_by_hand_is_complete_and_lookups_are_asked_once(tmp_path: Path) -> None:
    live = LiveState("PS1", computers={1: Computer(1, "PC-1")}, memberships={1: ("PS100001",)})
    assert live.computer(1) == Computer(1, "PC-1") and live.computer(2) is None
    assert live.computers_by_name("pc-1") == [Computer(1, "PC-1")] and live.member_of(1) == ("PS100001",)
    site = create_site(tmp_path / "site.db")
    try:
        rid = site.add_computer("Dup")  # type: ignore[attr-defined]
        site.add_computer("DUP")  # type: ignore[attr-defined]
        live = site.read()
        assert live.computers == {} and [c.name for c in live.computers_by_name("dup")] == ["Dup", "DUP"]
        assert live.computer(rid) == Computer(rid, "Dup") and live.member_of(rid) == ()
    finally:
        site.close()
