"""Export a site to manifests, import console export ZIPs, and round-trip both."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from reconciler.apply.executor import apply_plan
from reconciler.archive import UnsafeArchive
from reconciler.export import export_site, export_zip, import_zip
from reconciler.plan.planner import make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.source.loader import load
from reconciler.state import StateStore
from tests.conftest import CORPUS, REPO

SECRETS = {"OSD_LOCAL_ADMIN_PASSWORD": "exp-admin-1", "LAB_PC_042_BITLOCKER_PIN": "4711",
           "OSD_DOMAIN_JOIN_PASSWORD": "exp-join-2", "OSD_FIRMWARE_ACCOUNT_PASSWORD": "exp-fw-3",
           "OSD_CAPTURE_PASSWORD": "exp-capture-4"}


@pytest.fixture
def applied_site(tmp_path: Path) -> tuple[EmbeddedSite, Path]:
    """A site populated from the example repository, as an existing site would be."""
    work = tmp_path / "source"
    shutil.copytree(REPO / "manifests", work / "manifests")
    (work / "manifests" / "secrets").mkdir(exist_ok=True)
    (work / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text("exp-file-5\n")
    site = EmbeddedSite(tmp_path / "site.db")
    add_demo_inventory(site)
    state = StateStore(tmp_path / "seeding-state.db")
    os.environ.update(SECRETS)
    assert apply_plan(make_plan(load(work / "manifests"), site.read(), state), site, state,
                      work / "manifests").ok
    state.close()
    yield site, tmp_path
    site.close()


def test_export_then_plan_is_empty(applied_site: tuple[EmbeddedSite, Path]) -> None:
    site, tmp = applied_site
    state = StateStore(tmp / "fresh-state.db")  # a tool meeting this site for the first time
    result = export_site(site.read(), state, tmp / "exported")
    assert result.adopted > 0
    desired = load(tmp / "exported")
    assert not [f for f in desired.findings if f.severity.value == "error"], [f.render() for f in desired.findings]
    assert {o.kind for o in desired.objects} == {"TaskSequence", "TaskSequenceDeployment", "ContentDistribution",
                                                 "CollectionVariables", "ComputerVariables"}
    plan = make_plan(desired, site.read(), state)
    assert plan.actions == [] and plan.blocked == [], [(a.verb, a.ref, a.changes[:2]) for a in plan.actions]
    text = "".join(p.read_text() for p in result.files)
    for secret in (*SECRETS.values(), "exp-file-5"):
        assert secret not in text
    assert "valueFrom" in text and result.secrets
    assert (tmp / "exported" / "task-sequences" / "OSD" / "Production").is_dir()  # console folders mirrored
    again = export_site(site.read(), state, tmp / "exported-again")
    assert again.files == [] and len(again.skipped) == result.adopted - len(
        [p for p in result.files if "/content/" in p.as_posix()])  # already managed: not exported twice


def test_refresh_secrets_after_export_writes_the_secrets_the_tool_has_never_seen(
        applied_site: tuple[EmbeddedSite, Path]) -> None:
    """Exported objects keep the site's passwords until the administrator provides them and asks."""
    from reconciler.plan.actions import Reason
    from reconciler.secrets import reader

    site, tmp = applied_site
    state = StateStore(tmp / "fresh-state.db")
    result = export_site(site.read(), state, tmp / "exported")
    desired = load(tmp / "exported")
    assert make_plan(desired, site.read(), state).actions == []
    provided = {env: f"provided-{i}" for i, (_, env) in enumerate(result.secrets)}
    os.environ.update(provided)
    try:
        plan = make_plan(desired, site.read(), state, secrets=reader(tmp / "exported"))
        assert plan.blocked == [] and plan.actions
        assert {a.reason for a in plan.actions} == {Reason.SECRET}
        assert {a.ref.kind for a in plan.actions} >= {"TaskSequence"}
        assert all(c.sensitive for a in plan.actions for c in a.changes)
        assert apply_plan(plan, site, state, tmp / "exported").ok
        sequences = "".join(t.sequence for t in site.read().task_sequences.values())
        assert "provided-0" in sequences or any(
            f"provided-{i}" in sequences for i in range(len(provided)))
        again = make_plan(desired, site.read(), state, secrets=reader(tmp / "exported"))
        assert again.actions == [], [(a.ref, a.changes) for a in again.actions]
    finally:
        for env in provided:
            os.environ.pop(env, None)
        state.close()


def test_export_names_are_stable_and_collisions_resolved(applied_site: tuple[EmbeddedSite, Path]) -> None:
    site, tmp = applied_site
    from reconciler.site.records import TaskSequenceRecord

    site.create_task_sequence(TaskSequenceRecord(id=None, name="Module - BIOS settings",
                                                 sequence='<sequence version="3.10" />'))
    first = export_site(site.read(), StateStore(tmp / "a.db"), tmp / "one", {"TaskSequence"})
    second = export_site(site.read(), StateStore(tmp / "b.db"), tmp / "two", {"TaskSequence"})
    names = sorted(p.name for p in first.files)
    assert names == sorted(p.name for p in second.files)
    assert "module-bios-settings.yaml" in names and "module-bios-settings-2.yaml" in names


def test_every_corpus_zip_imports_and_validates(tmp_path: Path) -> None:
    zips = sorted((CORPUS / "zips").glob("*.zip"))
    assert len(zips) >= 10
    for path in zips:
        result = import_zip(path, tmp_path / "out")
        assert result.written or result.kept
    desired = load(tmp_path / "out")
    assert len(desired.objects) == len(zips)
    assert not [f for f in desired.findings if f.severity.value == "error"]
    custom = import_zip(CORPUS / "zips" / "Toolbox__CustomDialog.zip", tmp_path / "again")
    assert [(p.package_id, p.name) for p in custom.packages] == [("PS100019", "TS Tools")]
    bitlocker = (tmp_path / "out" / "task-sequences" / "child-ts-bitlocker.yaml").read_text()
    assert bitlocker.startswith("# yaml-language-server: $schema=../../crds/tasksequence.schema.json")


def test_zip_to_import_to_apply_to_export_gives_the_same_manifest(applied_site: tuple[EmbeddedSite, Path]) -> None:
    site, tmp = applied_site
    archive = export_zip(site.read(), tmp / "install.zip", "Windows 11 23H2 - Install")
    imported = import_zip(archive, tmp / "imported")
    assert len(imported.written) == 1
    manifest = yaml.safe_load(imported.written[0].read_text())
    fresh = EmbeddedSite(tmp / "fresh.db")
    add_demo_inventory(fresh)
    state = StateStore(tmp / "fresh-state.db")
    # the child sequence it runs must exist on the target site first
    child = export_zip(site.read(), tmp / "child.zip", "Module - BIOS settings")
    import_zip(child, tmp / "imported")
    result = apply_plan(make_plan(load(tmp / "imported"), fresh.read(), state), fresh, state, tmp / "imported")
    assert result.ok, [(r.action.ref, r.message) for r in result.results if r.outcome != "applied"]
    exported = export_site(fresh.read(), StateStore(tmp / "x.db"), tmp / "again", {"TaskSequence"})
    again = next(yaml.safe_load(p.read_text()) for p in exported.files if "install" in p.name)
    assert again["spec"]["steps"] == manifest["spec"]["steps"]
    assert again["spec"]["name"] == manifest["spec"]["name"] and again["metadata"] == manifest["metadata"]
    fresh.close()


def _zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Manifest.xml", "<LibraryDocument />")
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            archive.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(("entries", "symlink", "message"), [
    ({"/etc/evil.xml": b"x"}, None, "outside the output folder"),
    ({"SMS_TaskSequencePackage/../../evil.xml": b"x"}, None, "outside the output folder"),
    ({}, "SMS_TaskSequencePackage/link.xml", "symbolic link"),
    ({"bomb.xml": b"0" * 5_000_000}, None, "zip bomb"),
    ({f"f{i}.xml": b"" for i in range(10_001)}, None, "more than 10,000"),
])
def test_unsafe_archives_are_refused_and_nothing_is_written(tmp_path: Path, entries: dict, symlink: str | None,
                                                            message: str) -> None:
    archive = _zip(tmp_path / "bad.zip", entries, symlink)
    with pytest.raises(UnsafeArchive, match=message):
        import_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_conflict_choices_ignore_overwrite_new(tmp_path: Path) -> None:
    archive = CORPUS / "zips" / "DRFiles__TS-BitLocker.zip"
    out = tmp_path / "out"
    first = import_zip(archive, out)
    path = first.written[0]
    path.write_text(path.read_text().replace("name: Child TS - BitLocker", "name: Edited by hand"))
    kept = import_zip(archive, out, "ignore")
    assert kept.written == [] and kept.kept and "Edited by hand" in path.read_text()
    overwritten = import_zip(archive, out, "overwrite")
    assert overwritten.written == [path] and "Edited by hand" not in path.read_text()
    copy = import_zip(archive, out, "new")
    assert copy.written[0].name == "child-ts-bitlocker-2.yaml"
    assert {o.name for o in load(out).objects} == {"child-ts-bitlocker", "child-ts-bitlocker-2"}


def test_import_and_export_through_the_cli(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={**os.environ, **SECRETS})

    result = run("import", str(CORPUS / "zips" / "Toolbox__CustomDialog.zip"), "--out", "imported")
    assert result.returncode == 0 and "Content the site must have" in result.stdout
    bad = _zip(tmp_path / "bad.zip", {"../x.xml": b"x"})
    refused = run("import", str(bad), "--out", "nothing")
    assert refused.returncode == 1 and "refused" in refused.stderr and not (tmp_path / "nothing").exists()
    run("site", "init", "--demo")
    exported = run("export", "--out", "exported")
    assert exported.returncode == 0 and "0 object(s) are now managed" in exported.stdout
