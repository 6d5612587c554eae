"""Export a site to manifests, import console export ZIPs, and round-trip both."""

from __future__ import annotations

import os
import re
import shutil
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
from reconciler.tsxml.sequence import reference_ids
from tests.conftest import CORPUS, REPO, CliRun, run_cli

SECRETS = {"OSD_LOCAL_ADMIN_PASSWORD": "exp-admin-1", "OSD_LAB_PC_042_BITLOCKER_PIN": "4711",
           "OSD_DOMAIN_JOIN_PASSWORD": "exp-join-2", "OSD_FIRMWARE_ACCOUNT_PASSWORD": "exp-fw-3",
           "OSD_CAPTURE_PASSWORD": "exp-capture-4"}


@pytest.fixture
def applied_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[EmbeddedSite, Path]:
    """A site populated from the example repository, as an existing site would be."""
    work = tmp_path / "source"
    shutil.copytree(REPO / "manifests", work / "manifests")
    (work / "manifests" / "secrets").mkdir(exist_ok=True)
    (work / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text("exp-file-5\n")
    site = EmbeddedSite(tmp_path / "site.db")
    add_demo_inventory(site)
    state = StateStore(tmp_path / "seeding-state.db")
    for name, value in SECRETS.items():  # for this test only: the environment is the whole session's
        monkeypatch.setenv(name, value)
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
        assert any(site.holds_secret(ts_id, None, value) for ts_id in site.read().task_sequences
                   for value in provided.values())
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


EXAMPLE_TASK_SEQUENCES = sorted((REPO / "manifests" / "task-sequences").glob("*.yaml"))


def _differences(a: object, b: object, path: str = "") -> list[str]:
    """Every field path where two manifests differ, with both values: a readable assertion."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _secrets_masked(node: object) -> object:
    """A spec with every placeholder's variable name hidden: examples name theirs by hand, exports by rule."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {"env": "…"}
        return {k: _secrets_masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_secrets_masked(v) for v in node]
    return node


def _spec(manifest: dict) -> object:
    from reconciler.models import TaskSequence

    spec = TaskSequence.model_validate(manifest).spec
    return _secrets_masked(spec.model_dump(by_alias=True, mode="json", exclude_none=True))


def test_zip_round_trip_gives_the_same_manifest_for_every_example_task_sequence(
        applied_site: tuple[EmbeddedSite, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Site → export → ZIP → import → apply → export: the same manifest, field by field, for all six types."""
    site, tmp = applied_site
    examples = {m["spec"]["name"]: m for m in (yaml.safe_load(p.read_text()) for p in EXAMPLE_TASK_SEQUENCES)}
    assert len(examples) == 6 and len({m["spec"]["type"] for m in examples.values()}) == 6
    exported = export_site(site.read(), StateStore(tmp / "site-export.db"), tmp / "from-site", {"TaskSequence"})
    from_site = {m["spec"]["name"]: m for m in (yaml.safe_load(p.read_text()) for p in exported.files)}
    assert set(from_site) == set(examples)

    imported: dict[str, dict] = {}
    secrets: list[tuple[str, str]] = []
    for console_name, manifest in sorted(from_site.items()):
        archive = export_zip(site.read(), tmp / "zips" / f"{manifest['metadata']['name']}.zip", console_name)
        result = import_zip(archive, tmp / "imported")
        assert len(result.written) == 1
        imported[console_name] = yaml.safe_load(result.written[0].read_text())
        secrets += result.secrets
        # ZIP → import is what the site export gives, including folder and type, which the ZIP carries
        # in a part of its own, and the placeholders for the passwords the ZIP leaves out.
        assert _differences(manifest, imported[console_name]) == [], console_name
        # … and that is what the example says, but for the names of the placeholders' variables.
        assert _differences(_spec(examples[console_name]), _spec(imported[console_name])) == [], console_name
    assert sorted(secrets) == sorted(exported.secrets) and len(secrets) == 4  # install 2, capture 1, firmware 1

    fresh = EmbeddedSite(tmp / "fresh.db")
    add_demo_inventory(fresh)
    state = StateStore(tmp / "fresh-state.db")
    for _, env in secrets:
        monkeypatch.setenv(env, f"provided-{env}")
    result = apply_plan(make_plan(load(tmp / "imported"), fresh.read(), state), fresh, state, tmp / "imported")
    assert result.ok, [(r.action.ref, r.message) for r in result.results if r.outcome != "applied"]
    again = export_site(fresh.read(), StateStore(tmp / "x.db"), tmp / "again", {"TaskSequence"})
    round_tripped = {m["spec"]["name"]: m for m in (yaml.safe_load(p.read_text()) for p in again.files)}
    for console_name, manifest in imported.items():
        assert _differences(manifest, round_tripped[console_name]) == [], console_name
    fresh.close()


def test_export_zip_writes_the_properties_as_the_console_does(applied_site: tuple[EmbeddedSite, Path]) -> None:
    """object.xml property types are those of real console exports; the boot image is a named reference."""
    from reconciler.archive import read_console_export
    from reconciler.tsxml.xmltext import parse

    site, tmp = applied_site

    def properties(xml: bytes) -> dict[str, tuple[str, str]]:
        return {p.get("NAME"): (p.get("TYPE"), (p.findtext("VALUE") or "")) for p in parse(xml)
                if p.tag == "PROPERTY" and not p.get("NAME", "").startswith("__")}

    with zipfile.ZipFile(CORPUS / "zips" / "garytown__HPIA_Task_Sequence.zip") as archive:
        console = properties(archive.read(next(n for n in archive.namelist() if n.endswith("/object.xml"))))
    for console_name in ("Windows 11 23H2 - In-place upgrade", "Windows 11 23H2 - Install"):
        path = export_zip(site.read(), tmp / "out.zip", console_name)
        with zipfile.ZipFile(path) as archive:
            ours = properties(archive.read(next(n for n in archive.namelist() if n.endswith("/object.xml"))))
        for name, (cim_type, value) in ours.items():
            assert cim_type == console[name][0], name
            if cim_type == "uint32":
                assert value.isdigit(), (name, value)
        flags = ("HighImpactTaskSequence", "RestartRequired")
        assert [ours[f][1] for f in flags] == (["1", "1"] if "upgrade" in console_name else ["0", "1"])
    install = next(t for t in site.read().task_sequences.values() if t.name == "Windows 11 23H2 - Install")
    boot_image = read_console_export(path).references[install.boot_image_id]  # path: the install sequence's ZIP
    assert (boot_image.name, boot_image.package_type) == ("Boot image (x64)", 258)


def test_import_asks_for_the_passwords_a_console_export_left_out(tmp_path: Path) -> None:
    """The console empties passwords; one the step uses becomes a placeholder, an unused one stays empty."""
    result = import_zip(CORPUS / "zips" / "garytown__OSDCloudTaskSequence.zip", tmp_path / "out")
    text = result.written[0].read_text()
    manifest = yaml.safe_load(text)

    def steps(nodes: list[dict]) -> list[dict]:
        return [s for n in nodes for s in (steps(n["steps"]) if "group" in n else [n])]

    by_type = {s["type"]: s["settings"] for s in steps(manifest["spec"]["steps"]) if s.get("type") in (
        "ApplyWindowsSettings", "ApplyNetworkSettings")}
    join = by_type["ApplyNetworkSettings"]["password"]["valueFrom"]["env"]
    admin = by_type["ApplyWindowsSettings"]["adminPassword"]["valueFrom"]["env"]
    assert by_type["ApplyWindowsSettings"]["productKey"] == ""  # no key is the edition's default key
    assert join.startswith("OSD_TS_OSD_CLOUD_DOMAIN_JOIN__") and admin.startswith("OSD_TS_OSD_CLOUD_DOMAIN_JOIN__")
    assert {env for _, env in result.secrets} >= {join, admin}
    assert f"provide it in ${join}" in text and f"provide it in ${admin}" in text


def test_overwrite_replaces_only_the_conflicting_document_of_a_file(tmp_path: Path) -> None:
    """A file holding the task sequence and, after ---, its deployment keeps the deployment and its comments."""
    archive = CORPUS / "zips" / "DRFiles__TS-BitLocker.zip"
    fresh = import_zip(archive, tmp_path / "fresh").written[0].read_text()
    imported = yaml.safe_load(fresh)
    ts_text = fresh.split("apiVersion:", 1)[1].replace("name: Child TS - BitLocker", "name: Edited by hand")
    deployment = ("# The deployment that goes with it.\n"
                  "apiVersion: configmgr.gitops.io/v1alpha1\nkind: TaskSequenceDeployment\n"
                  "metadata: {name: bitlocker-lab}\n"
                  "spec:\n  taskSequence: child-ts-bitlocker\n  collection: {name: OSD Lab}\n"
                  "  purpose: Available\n  schedule: {rerun: Always}  # on demand\n")
    head = "# Mine: BitLocker and where it runs.\n# yaml-language-server: $schema=../../crds/tasksequence.schema.json\n"
    out = tmp_path / "out"
    mine = out / "other" / "mine.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text(head + "apiVersion:" + ts_text + "---\n" + deployment + "# end of file\n")

    for _ in range(2):  # twice: a second overwrite replaces the first one's notes, it does not add to them
        result = import_zip(archive, out, "overwrite")
        assert result.written == [mine]
        text = mine.read_text()
        documents = list(yaml.safe_load_all(text))
        assert len(documents) == 2 and documents[0] == imported
        assert text.startswith(head) and text.endswith("---\n" + deployment + "# end of file\n")
        assert text.count("# Imported from") == 1 and "Edited by hand" not in text
    assert sorted((o.kind, o.name) for o in load(out).objects) == [
        ("TaskSequence", "child-ts-bitlocker"), ("TaskSequenceDeployment", "bitlocker-lab")]
    assert not (out / "task-sequences").exists()


def test_content_of_a_sequence_that_runs_a_child_is_exported(applied_site: tuple[EmbeddedSite, Path]) -> None:
    """The child task sequence is no content: the install sequence's DPs still hold all it needs."""
    site, tmp = applied_site
    state = StateStore(tmp / "fresh-state.db")
    live = site.read()
    child_id = next(i for i, t in live.task_sequences.items() if t.name == "Module - BIOS settings")
    assert child_id in reference_ids(next(t for t in live.task_sequences.values()
                                          if t.name == "Windows 11 23H2 - Install").sequence)
    result = export_site(live, state, tmp / "exported", {"TaskSequence", "ContentDistribution"})
    content = {m["spec"]["taskSequence"]: m for m in (yaml.safe_load(p.read_text()) for p in result.files)
               if m["kind"] == "ContentDistribution"}
    install = content["windows-11-23h2-install"]
    assert sorted(install["spec"]["distributionPoints"]) == sorted(live.distribution_points)  # All DPs
    pairs = state.applied()[("ContentDistribution", install["metadata"]["name"])].extra["pairs"]
    packages = {p for p, _ in pairs}
    assert child_id not in packages
    assert {live.packages[p].name for p in packages} >= {"Boot image (x64)", "Windows 11 23H2 x64", "OSD Tools"}
    assert make_plan(load(tmp / "exported"), site.read(), state).actions == []


def _run_as_sequence(password: str, step: str = "Run as admin") -> str:
    from reconciler.tsxml.sequence import write_sequence

    spec = {"steps": [{"name": step, "type": "RunCommandLine", "settings": {
        "commandLine": "cmd /c echo", "runAsUser": True, "userName": "CORP\\osd",
        "userPassword": {"valueFrom": {"env": "ANY"}}}}]}
    return write_sequence(spec, secrets=lambda source: password)


def test_export_gives_every_secret_its_own_placeholder(tmp_path: Path) -> None:
    """Two task sequences with a "Run as admin" step: two variables, named after each task sequence."""
    from reconciler.site.records import TaskSequenceRecord

    site = EmbeddedSite(tmp_path / "site.db")
    for name, step, password in (("TS 1", "Run as admin", "pw-1"), ("TS 2", "Run as admin", "pw-2"),
                                 ("TS 1 Run", "as admin", "pw-3")):  # a name built to collide with TS 1's
        site.create_task_sequence(TaskSequenceRecord(id=None, name=name, sequence=_run_as_sequence(password, step)))

    def envs(out: str) -> dict[str, str]:
        result = export_site(site.read(), StateStore(tmp_path / f"{out}.db"), tmp_path / out, {"TaskSequence"})
        by_file = {}
        for path in result.files:
            settings = yaml.safe_load(path.read_text())["spec"]["steps"][0]["settings"]
            by_file[path.name] = settings["userPassword"]["valueFrom"]["env"]
        assert sorted(by_file.values()) == sorted(env for _, env in result.secrets)
        return by_file

    first = envs("one")
    assert len(set(first.values())) == 3
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env) for env in first.values())
    assert first["ts-1.yaml"] == "OSD_TS_TS_1__RUN_AS_ADMIN__SMSTSRUNCOMMANDLINEUSERPASSWORD"
    assert first["ts-2.yaml"] == "OSD_TS_TS_2__RUN_AS_ADMIN__SMSTSRUNCOMMANDLINEUSERPASSWORD"
    assert envs("two") == first  # deterministic
    site.close()


def _has_windows_device_name(part: str) -> bool:
    return re.fullmatch(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])", part.split(".")[0].rstrip(" "), re.I) is not None


def test_export_never_writes_a_windows_device_name(tmp_path: Path) -> None:
    """Folders and files named CON, aux.old, "nul .txt", Com9, LPT1… cannot be checked out on Windows."""
    from reconciler.site.records import TaskSequenceRecord

    site = EmbeddedSite(tmp_path / "site.db")
    for name, folder in (("Nul", "CON/aux.old/nul .txt/Com9"), ("Deploy", "lpt1\\PRN.backup"),
                         ("AUX", None), ("COM3", "Servers")):
        site.create_task_sequence(TaskSequenceRecord(id=None, name=name, folder=folder,
                                                     sequence='<sequence version="3.10" />'))

    def paths(out: str) -> list[Path]:
        result = export_site(site.read(), StateStore(tmp_path / f"{out}.db"), tmp_path / out, {"TaskSequence"})
        return sorted(p.relative_to(tmp_path / out) for p in result.files)

    first = paths("one")
    assert len(first) == 4
    assert [p for p in first if any(_has_windows_device_name(part) for part in p.parts)] == []
    assert paths("two") == first  # deterministic
    assert {o.name for o in load(tmp_path / "one").objects} == {"nul", "deploy", "aux", "com3"}
    archive = export_zip(site.read(), tmp_path / "aux.zip", "AUX")
    written = import_zip(archive, tmp_path / "imported").written
    assert [p.name for p in written] == ["aux_.yaml"]
    site.close()


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
    def run(*args: str) -> CliRun:
        return run_cli(*args, cwd=tmp_path, env=SECRETS)

    result = run("import", str(CORPUS / "zips" / "Toolbox__CustomDialog.zip"), "--out", "imported")
    assert result.returncode == 0 and "Content the site must have" in result.stdout
    bad = _zip(tmp_path / "bad.zip", {"../x.xml": b"x"})
    refused = run("import", str(bad), "--out", "nothing")
    assert refused.returncode == 1 and "refused" in refused.stderr and not (tmp_path / "nothing").exists()
    run("site", "init", "--demo")
    exported = run("export", "--out", "exported")
    assert exported.returncode == 0 and "0 object(s) are now managed" in exported.stdout
