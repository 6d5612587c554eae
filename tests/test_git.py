"""Manifests from Git: any ref without a checkout, pull request plans, provenance, the pre-commit hook."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest
import yaml

from reconciler.source.git import GitRepository, ParseCache, load_revision
from tests.conftest import REPO

ESTATE = REPO / "tests" / "data" / "estate"
ENV = {"TEST_LOCAL_ADMIN_PASSWORD": "git-test-secret", "NO_COLOR": "1"}


def commit(repo: git.Repo, message: str) -> str:
    repo.git.add(A=True)
    repo.index.commit(message)
    return repo.head.commit.hexsha


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    root = tmp_path / "repo"
    shutil.copytree(ESTATE, root / "manifests")
    shutil.rmtree(root / "manifests" / "secrets")
    r = git.Repo.init(root, initial_branch="main")
    r.config_writer().set_value("user", "name", "Test").release()
    r.config_writer().set_value("user", "email", "test@example.com").release()
    (root / "README.md").write_text("# estate\n")
    (root / "manifests" / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (root / "manifests" / "notes.txt").write_text("not yaml: [\n")
    commit(r, "initial estate")
    return r


def secrets_beside(cwd: Path) -> None:
    """File secrets are read relative to the manifests folder where the tool runs, never from Git."""
    (cwd / "manifests" / "secrets").mkdir(parents=True, exist_ok=True)
    (cwd / "manifests" / "secrets" / "join.txt").write_text("file-secret\n")


def reconcile(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **ENV}, timeout=120, stdin=subprocess.DEVNULL)


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_plan_at_an_older_commit_reads_that_tree_without_touching_the_working_copy(repo: git.Repo,
                                                                                    tmp_path: Path) -> None:
    root = Path(repo.working_tree_dir)
    first = repo.head.commit.hexsha
    edit(root / "manifests" / "task-sequences.yaml", "Module - BIOS settings", "Module - Firmware settings")
    commit(repo, "rename the module")
    (root / "manifests" / "scratch.yaml").write_text("uncommitted: true\n")  # an uncommitted file is not read
    work = tmp_path / "work"
    work.mkdir()
    old = reconcile(work, "manifests", "--repo", str(root), "--ref", first, "--dry-run", "--output", "json")
    assert old.returncode == 0, old.stderr
    names = {a["summary"] for a in json.loads(old.stdout)["actions"] if a["verb"] == "CreateTaskSequence"}
    assert "Module - BIOS settings" in names and "Module - Firmware settings" not in names
    new = reconcile(work, "manifests", "--repo", str(root), "--ref", "main", "--dry-run", "--output", "json")
    assert "Module - Firmware settings" in {a["summary"] for a in json.loads(new.stdout)["actions"]}
    assert repo.git.status("--porcelain") == "?? manifests/scratch.yaml"
    assert repo.head.commit.hexsha != first


def test_errors_name_ref_path_and_line(repo: git.Repo, tmp_path: Path) -> None:
    root = Path(repo.working_tree_dir)
    repo.git.checkout("-b", "broken")
    edit(root / "manifests" / "content.yaml", "distributionPointGroups", "distributionPointGroup")
    commit(repo, "typo")
    result = reconcile(tmp_path, "manifests", "--repo", str(root), "--ref", "broken", "--dry-run")
    assert result.returncode == 1
    assert "broken:manifests/content.yaml:4:" in result.stderr
    assert "did you mean 'distributionPointGroups'" in result.stderr


def test_a_ref_that_does_not_exist_is_a_clear_error(repo: git.Repo, tmp_path: Path) -> None:
    result = reconcile(tmp_path, "manifests", "--repo", str(repo.working_tree_dir), "--ref", "no-such-branch",
                       "--dry-run")
    assert result.returncode == 1
    assert "ref 'no-such-branch' does not exist" in result.stderr and "branches: main" in result.stderr
    assert "Traceback" not in result.stderr


def test_binary_and_non_yaml_files_are_ignored(repo: git.Repo, tmp_path: Path) -> None:
    r = GitRepository(str(repo.working_tree_dir), tmp_path / "cache")
    files = [p for p, _ in r.manifest_files(r.resolve("main"), "manifests")]
    assert files == ["manifests/content.yaml", "manifests/deployments.yaml", "manifests/task-sequences.yaml",
                     "manifests/variables.yaml"]


def test_pull_request_plan_between_two_branches(repo: git.Repo, tmp_path: Path) -> None:
    root = Path(repo.working_tree_dir)
    work = tmp_path / "work"
    work.mkdir()
    secrets_beside(work)
    # The site already runs main; then a console edit drifts a sequence the PR does not touch.
    assert reconcile(work, "manifests", "--repo", str(root), "--ref", "main", "--yes").returncode == 0
    from reconciler.site.embedded import EmbeddedSite

    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        bios = next(t for t in site.read().task_sequences.values() if t.name == "Module - BIOS settings")
        assert bios.id
        site.set_task_sequence_enabled(bios.id, True)
    repo.git.checkout("-b", "feature")
    edit(root / "manifests" / "deployments.yaml", "rerun: IfFailed", "rerun: Always")
    docs = list(yaml.safe_load_all((root / "manifests" / "variables.yaml").read_text()))
    (root / "manifests" / "variables.yaml").write_text(yaml.safe_dump(docs[0], sort_keys=False))  # one object removed
    (root / "manifests" / "computer.yaml").write_text(yaml.safe_dump(docs[1], sort_keys=False))  # one object moved
    repo.git.mv("manifests/content.yaml", "manifests/content-renamed.yaml")  # a file renamed
    commit(repo, "feature")
    repo.git.checkout("main")
    result = reconcile(work, "manifests", "--repo", str(root), "--base", "main", "--head", "feature", "--dry-run",
                       "--output", "json")
    assert result.returncode == 0, result.stderr
    review = json.loads(result.stdout)
    changes = {(c["kind"], c["name"]): c for c in review["manifest_changes"]}
    assert set(changes) == {("TaskSequenceDeployment", "win11-install-pilot")}
    assert changes[("TaskSequenceDeployment", "win11-install-pilot")]["changes"][0]["path"] == "spec.schedule.rerun"
    assert [(a["verb"], a["name"]) for a in review["plan"]["actions"]] == [
        ("UpdateDeployment", "win11-install-pilot")]
    assert review["untouched"]["objects"] == ["TaskSequence/bios-settings"]
    markdown = reconcile(work, "manifests", "--repo", str(root), "--base", "main", "--head", "feature",
                         "--dry-run", "--output", "markdown").stdout
    assert markdown.startswith("<!-- configmgr-ts-reconciler:plan -->")
    assert "Not part of this change: 1 other pending change(s)" in markdown


def test_a_removed_manifest_is_listed_as_removed(repo: git.Repo, tmp_path: Path) -> None:
    root = Path(repo.working_tree_dir)
    repo.git.checkout("-b", "drop")
    (root / "manifests" / "content.yaml").unlink()
    commit(repo, "drop content")
    review = json.loads(reconcile(tmp_path, "manifests", "--repo", str(root), "--base", "main", "--head", "drop",
                                  "--dry-run", "--output", "json").stdout)
    assert [(c["status"], c["name"]) for c in review["manifest_changes"]] == [("removed", "win11-install-content")]


def test_the_parse_cache_reparses_only_changed_files(repo: git.Repo, tmp_path: Path) -> None:
    root = Path(repo.working_tree_dir)
    r = GitRepository(str(root), tmp_path / "cache")
    cache = ParseCache(tmp_path / "cache" / "parse-cache.db")
    cold = load_revision(r, r.resolve("main"), "manifests", cache)
    assert cold.parsed == 4
    warm = load_revision(r, r.resolve("main"), "manifests", cache)
    assert warm.parsed == 0 and len(warm.objects) == len(cold.objects)
    edit(root / "manifests" / "deployments.yaml", "rerun: Always", "rerun: Never")
    commit(repo, "one file")
    after = load_revision(r, r.resolve("main"), "manifests", cache)
    assert after.parsed == 1
    assert all(o.source.file.startswith("main:manifests/") for o in after.objects)


def test_a_remote_url_is_cloned_into_the_cache(repo: git.Repo, tmp_path: Path) -> None:
    url = Path(repo.working_tree_dir).as_uri()
    first = GitRepository(url, tmp_path / "cache")
    assert first.resolve("main").sha == repo.head.commit.hexsha
    edit(Path(repo.working_tree_dir) / "manifests" / "deployments.yaml", "rerun: Always", "rerun: Never")
    sha = commit(repo, "upstream change")
    assert GitRepository(url, tmp_path / "cache").resolve("main").sha == sha  # fetched


def test_apply_records_the_commit_and_history_lists_it(repo: git.Repo, tmp_path: Path) -> None:
    root = Path(repo.working_tree_dir)
    sha = repo.head.commit.hexsha
    secrets_beside(tmp_path)
    assert reconcile(tmp_path, "manifests", "--repo", str(root), "--ref", "main", "--yes").returncode == 0
    edit(root / "manifests" / "deployments.yaml", "rerun: Always", "rerun: Never")
    second = commit(repo, "second")
    assert reconcile(tmp_path, "manifests", "--repo", str(root), "--ref", "main", "--yes").returncode == 0
    history = json.loads(reconcile(tmp_path, "history", "--output", "json").stdout)
    assert [h["sha"] for h in history] == [second, sha]
    assert history[0]["ref"] == "main" and history[0]["outcome"] == "ok" and history[0]["result"]["applied"] == 1
    text = reconcile(tmp_path, "history").stdout
    assert second[:12] in text.splitlines()[0]


def test_the_pre_commit_hook_command_runs_on_a_repository(repo: git.Repo) -> None:
    hook = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())[0]
    entry = hook["entry"].split()
    script = shutil.which(entry[0]) or str(Path(sys.executable).parent / entry[0])
    command = [script, *entry[1:], *hook["args"]]
    root = Path(repo.working_tree_dir)
    ok = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    edit(root / "manifests" / "deployments.yaml", "purpose: Required", "purpose: Mandatory")
    bad = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "allowed: 'Available' or 'Required'" in bad.stdout


def test_the_pull_request_comment_stays_under_githubs_limit() -> None:
    from reconciler.plan.actions import Action, FieldChange, ObjectRef, Plan, Reason, Verb
    from reconciler.render.review import markdown_text
    from reconciler.review import ManifestChange, Review

    big = tuple(FieldChange(f"spec.steps[{i}].settings.commandLine", "x" * 200, "y" * 200) for i in range(400))
    plan = Plan("p", "PS1", actions=[
        Action(Verb.UPDATE_TASK_SEQUENCE, ObjectRef("TaskSequence", f"ts-{n}"), Reason.CHANGED, "PS100001", big)
        for n in range(3)])
    changes = [ManifestChange(ObjectRef("TaskSequence", f"ts-{n}"), "modified", big) for n in range(3)]
    text = markdown_text(Review({"ref": "main", "sha": "a" * 40}, {"ref": "pr", "sha": "b" * 40}, changes, plan))
    assert len(text) <= 65_536
    assert text.startswith("<!-- configmgr-ts-reconciler:plan -->") and "folded to fit" in text
    assert "| manifests changed |" in text


def test_a_huge_pull_request_comment_folds_first_and_says_what_it_left_out() -> None:
    from reconciler.plan.actions import Action, FieldChange, ObjectRef, Plan, Reason, Verb
    from reconciler.plan.policies import HighRisk
    from reconciler.render.review import markdown_text
    from reconciler.review import ManifestChange, Review

    added = [ManifestChange(ObjectRef("TaskSequence", f"gen-ts-{n:04}"), "added") for n in range(1500)]
    edit_ = ManifestChange(ObjectRef("TaskSequence", "win11"), "modified",
                           (FieldChange("spec.description", "old " * 50, "new " * 50),))
    risk = HighRisk(reasons=("Required deployment of a task sequence that deploys an operating system",),
                    collection_id="PS100001", collection_name="OSD Pilot", member_count=25, acknowledged=True,
                    needs_acknowledgement=True, site_systems=False)
    plan = Plan("p", "PS1", actions=[
        Action(Verb.UPDATE_TASK_SEQUENCE, ObjectRef("TaskSequence", "win11"), Reason.CHANGED, "PS100001",
               edit_.changes),
        Action(Verb.CREATE_DEPLOYMENT, ObjectRef("TaskSequenceDeployment", "win11-pilot"), Reason.NEW, None,
               (FieldChange("purpose", None, "Required"),), risk=risk),
        *[Action(Verb.CREATE_TASK_SEQUENCE, ObjectRef("TaskSequence", c.ref.name), Reason.NEW, None,
                 (FieldChange("description", None, "d" * 400),)) for c in added]])
    text = markdown_text(Review({"ref": "main", "sha": "a" * 40}, {"ref": "pr", "sha": "b" * 40},
                                [edit_, *added], plan))
    assert len(text) <= 65_536
    # What matters most is always there: the high-risk deployment and the modified sequence.
    assert "⚠ HIGH RISK plan: <code>TaskSequenceDeployment/win11-pilot</code>" in text
    assert "<code>TaskSequence/win11</code> manifest modified" in text
    assert "plan: <code>TaskSequence/win11</code> UpdateTaskSequence" in text
    # Nothing disappears silently: what is listed plus what the note counts is every object.
    listed = text.count("<code>TaskSequence/gen-ts-")
    note = re.search(r"Not listed, to stay under GitHub's comment limit: (.*?)\. ", text)
    assert note is not None
    left_out = sum(int(n) for n in re.findall(r"(\d+) ", note.group(1)))
    assert listed + left_out == 2 * 1500
