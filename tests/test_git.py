"""Manifests from Git: any ref without a checkout, pull request plans, provenance, the pre-commit hook.

Commands run in-process; real processes where they are the point: plans racing on one parse cache, the
pre-commit hook's command and the CI workflow's shell steps."""

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
from tests.conftest import REPO, CliRun, run_cli

ESTATE = REPO / "tests" / "data" / "estate"
ENV = {"OSD_TEST_LOCAL_ADMIN_PASSWORD": "git-test-secret", "NO_COLOR": "1"}


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


def reconcile(cwd: Path, *args: str) -> CliRun:
    return run_cli(*args, cwd=cwd, env=ENV)


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
    history = json.loads(reconcile(tmp_path, "history", "--output", "json").stdout)["applies"]
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
    assert Path(command[0]).name == "reconcile"  # the same command, now that it is known to run: in-process
    bad = run_cli(*command[1:], cwd=root)
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


def run_at_once(cwd: Path, count: int, *args: str) -> list[subprocess.CompletedProcess[str]]:
    """Start ``count`` reconcile processes together and wait for all of them."""
    command = [sys.executable, "-m", "reconciler", *args]
    procs = [subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **ENV}, stdin=subprocess.DEVNULL) for _ in range(count)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        out.append(subprocess.CompletedProcess(command, proc.returncode, stdout, stderr))
    return out


def test_concurrent_plans_on_a_fresh_parse_cache_all_succeed(repo: git.Repo, tmp_path: Path) -> None:
    root = str(repo.working_tree_dir)
    # More files make more cache writes racing each other, as in a real estate.
    for n in range(12):
        edit_from = Path(root) / "manifests" / "task-sequences.yaml"
        (Path(root) / "manifests" / f"copy-{n}.yaml").write_text(
            edit_from.read_text().replace("name: ", f"name: c{n}-").replace("{name: ", f"{{name: c{n}-"))
    commit(repo, "more files")
    # A first run creates the embedded site; its cache is then thrown away so every run below starts cold.
    first = reconcile(tmp_path, "manifests", "--repo", root, "--ref", "main", "--dry-run", "--output", "json")
    assert first.returncode == 0, first.stderr
    for stale in (tmp_path / ".reconcile").glob("parse-cache.db*"):
        stale.unlink()
    runs = run_at_once(tmp_path, 8, "manifests", "--repo", root, "--ref", "main", "--dry-run", "--output", "json")
    assert [r.returncode for r in runs] == [0] * 8, "\n".join(r.stderr for r in runs)
    assert not any("Traceback" in r.stderr or "locked" in r.stderr for r in runs)
    assert {r.stdout.replace(json.loads(r.stdout)["plan_id"], "") for r in runs} == {
        first.stdout.replace(json.loads(first.stdout)["plan_id"], "")}
    r = GitRepository(root, tmp_path / "cache")
    cache = ParseCache(tmp_path / ".reconcile" / "parse-cache.db")
    try:
        assert load_revision(r, r.resolve("main"), "manifests", cache).parsed == 0  # the runs filled the cache
    finally:
        cache.close()


def test_a_locked_parse_cache_is_waited_on_then_skipped(repo: git.Repo, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    import sqlite3

    r = GitRepository(str(repo.working_tree_dir), tmp_path / "cache")
    path = tmp_path / "cache" / "parse-cache.db"
    cache = ParseCache(path, busy_timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another run holds the write lock for longer than we wait
    try:
        locked = load_revision(r, r.resolve("main"), "manifests", cache)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert locked.parsed == 4 and len(locked.objects) == 7 and not locked.findings
    assert "parse cache" in caplog.text and "database is locked; parsing without it" in caplog.text
    # A long-lived holder of the cache (the controller) uses it again once the lock is gone.
    assert load_revision(r, r.resolve("main"), "manifests", cache).parsed == 4
    assert load_revision(r, r.resolve("main"), "manifests", cache).parsed == 0
    cache.close()


def test_a_damaged_parse_cache_is_skipped(repo: git.Repo, tmp_path: Path) -> None:
    (tmp_path / ".reconcile").mkdir()
    (tmp_path / ".reconcile" / "parse-cache.db").write_bytes(b"not a database " * 1000)
    result = reconcile(tmp_path, "manifests", "--repo", str(repo.working_tree_dir), "--ref", "main", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "parse-cache.db: file is not a database; parsing without it" in result.stderr


def diverged(repo: git.Repo, on_main: tuple[str, str, str], on_branch: tuple[str, str, str]) -> None:
    """Cut ``feature`` from main, then commit one edit (file, old, new) on main and one on the branch."""
    root = Path(repo.working_tree_dir)
    repo.git.checkout("-b", "feature")
    edit(root / "manifests" / on_branch[0], *on_branch[1:])
    commit(repo, "the pull request's change")
    repo.git.checkout("main")
    edit(root / "manifests" / on_main[0], *on_main[1:])
    commit(repo, "main moved on")


def test_pull_request_plan_is_of_the_merge_when_main_moved_on(repo: git.Repo, tmp_path: Path) -> None:
    root = Path(repo.working_tree_dir)
    # The two edits are in one file, on different lines: the file Git merges is neither side's.
    diverged(repo, ("deployments.yaml", "rerun: IfFailed", "rerun: Always"),  # A on main
             ("deployments.yaml", "schedule: {rerun: Always}", "schedule: {rerun: Never}"))  # B on the branch
    edit(root / "manifests" / "task-sequences.yaml", "Module - BIOS settings", "Module - Firmware settings")
    commit(repo, "main moved on again, in another file")
    secrets_beside(tmp_path)
    assert reconcile(tmp_path, "manifests", "--repo", str(root), "--ref", "main", "--yes").returncode == 0
    result = reconcile(tmp_path, "manifests", "--repo", str(root), "--base", "main", "--head", "feature",
                       "--dry-run", "--output", "json")
    assert result.returncode == 0, result.stderr
    review = json.loads(result.stdout)
    assert [(c["status"], c["kind"], c["name"]) for c in review["manifest_changes"]] == [
        ("modified", "TaskSequenceDeployment", "bios-settings-lab")]
    change = review["manifest_changes"][0]
    assert change["changes"] == [{"path": "spec.schedule.rerun", "before": "Always", "after": "Never"}]
    assert change["file"] == "main+feature:manifests/deployments.yaml"  # merged from both sides
    # Merging keeps main's A (already on the site) and main's sequence name: nothing reverts them.
    assert [(a["verb"], a["name"]) for a in review["plan"]["actions"]] == [("UpdateDeployment", "bios-settings-lab")]
    assert review["untouched"]["count"] == 0
    assert review["head"]["sha"] == repo.commit("feature").hexsha
    assert repo.git.status("--porcelain") == "" and repo.active_branch.name == "main"


def test_a_change_on_main_not_yet_applied_stays_out_of_the_pull_requests_plan(repo: git.Repo,
                                                                              tmp_path: Path) -> None:
    root = Path(repo.working_tree_dir)
    secrets_beside(tmp_path)
    assert reconcile(tmp_path, "manifests", "--repo", str(root), "--ref", "main", "--yes").returncode == 0
    diverged(repo, ("task-sequences.yaml", "Module - BIOS settings", "Module - Firmware settings"),
             ("deployments.yaml", "rerun: IfFailed", "rerun: Always"))
    review = json.loads(reconcile(tmp_path, "manifests", "--repo", str(root), "--base", "main", "--head", "feature",
                                  "--dry-run", "--output", "json").stdout)
    assert [c["name"] for c in review["manifest_changes"]] == ["win11-install-pilot"]
    assert review["manifest_changes"][0]["file"] == "feature:manifests/deployments.yaml"  # the branch's own file
    assert [(a["verb"], a["name"]) for a in review["plan"]["actions"]] == [("UpdateDeployment", "win11-install-pilot")]
    # Main's rename is pending on the site, forward (to main's name), and summarised apart from the review.
    assert review["untouched"]["objects"] == ["TaskSequence/bios-settings"]


def test_a_pull_request_that_conflicts_with_main_is_a_clear_error(repo: git.Repo, tmp_path: Path) -> None:
    diverged(repo, ("deployments.yaml", "rerun: IfFailed", "rerun: Always"),
             ("deployments.yaml", "rerun: IfFailed", "rerun: Never"))
    result = reconcile(tmp_path, "manifests", "--repo", str(repo.working_tree_dir), "--base", "main", "--head",
                       "feature", "--dry-run", "--output", "markdown")
    assert result.returncode == 1 and "### ConfigMgr plan for" not in result.stdout  # no plan
    assert "merging feature into main conflicts in manifests/deployments.yaml" in result.stderr
    assert "conflicts in manifests/deployments.yaml" in result.stdout  # the PR comment says why
    assert "Traceback" not in result.stderr
    assert repo.git.status("--porcelain") == ""


def test_a_conflict_outside_the_manifests_is_noted_and_the_merge_planned(repo: git.Repo, tmp_path: Path) -> None:
    diverged(repo, ("../README.md", "# estate", "# the estate"), ("../README.md", "# estate", "# our estate"))
    root = Path(repo.working_tree_dir)
    repo.git.checkout("feature")
    edit(root / "manifests" / "deployments.yaml", "rerun: IfFailed", "rerun: Always")
    commit(repo, "and a manifest")
    result = reconcile(tmp_path, "manifests", "--repo", str(root), "--base", "main", "--head", "feature",
                       "--dry-run", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert "conflicts in README.md (not manifests under manifests)" in result.stderr
    assert [c["name"] for c in json.loads(result.stdout)["manifest_changes"]] == ["win11-install-pilot"]


def test_without_merge_tree_the_changes_are_the_branchs_own_and_stderr_says_so(
        repo: git.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from reconciler.review import manifest_changes
    from reconciler.source import git as git_source
    from reconciler.source.select import load_pair

    diverged(repo, ("task-sequences.yaml", "Module - BIOS settings", "Module - Firmware settings"),
             ("deployments.yaml", "rerun: IfFailed", "rerun: Always"))
    monkeypatch.setattr(git_source, "MERGE_TREE_GIT", (99, 0))  # as with Git older than 2.38
    before, base_rev, after, head_rev = load_pair(str(repo.working_tree_dir), "main", "feature", "manifests",
                                                  tmp_path / "cache")
    assert [c.ref.name for c in manifest_changes(before, after)] == ["win11-install-pilot"]
    assert base_rev.sha == repo.commit("main").hexsha and head_rev.sha == repo.commit("feature").hexsha
    assert "needs 2.38 or later): planning feature alone" in caplog.text


CI = REPO / "examples" / "ci"


def github_steps() -> list[dict[str, object]]:
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    return workflow["jobs"]["plan"]["steps"]


def test_the_github_workflow_fails_the_check_after_posting_when_the_plan_fails() -> None:
    steps = github_steps()
    ids = [s.get("id") for s in steps]
    for at, step in enumerate(steps):
        text = " ".join(str(v) for v in (step.get("if", ""), step.get("run", ""), step.get("with", "")))
        for used in re.findall(r"steps\.([\w-]+)\.outputs\.(\w+)", text):
            assert used[0] in ids[:at], f"step {at} reads {used[0]!r}, which no earlier step has as id"
            assert f"{used[1]}=" in str(steps[ids.index(used[0])]["run"]) and "$GITHUB_OUTPUT" in str(
                steps[ids.index(used[0])]["run"])
    post = next(i for i, s in enumerate(steps) if "github-script" in str(s.get("uses", "")))
    gate = next((i for i, s in enumerate(steps) if "steps.plan.outputs.status" in str(s.get("if", ""))), None)
    assert gate is not None, "no step fails the check on the plan's exit status"
    assert post < gate == len(steps) - 1 and "steps.validate.outputs.status" in str(steps[gate]["if"])
    assert "exit 1" in str(steps[gate]["run"])


def test_the_azure_pipeline_fails_the_build_after_posting_when_the_plan_fails() -> None:
    steps = yaml.safe_load((CI / "azure-pipelines.yml").read_text())["steps"]
    names = [s.get("name") for s in steps]
    for at, step in enumerate(steps):
        text = " ".join(str(v) for v in step.values())
        used = re.findall(r"variables\['(\w+)\.(\w+)'\]", text) + re.findall(r"\$\(([a-z]\w*)\.(\w+)\)", text)
        for name, variable in used:
            assert name in names[:at], f"step {at} reads {name!r}, which no earlier step has as name"
            assert f"variable={variable};isOutput=true" in str(steps[names.index(name)]["pwsh"])
    post = next(i for i, s in enumerate(steps) if "pullRequests" in str(s.get("pwsh", "")))
    gate = next((i for i, s in enumerate(steps) if "plan.status" in str(s.get("condition", ""))), None)
    assert gate is not None, "no step fails the build on the plan's exit status"
    assert post < gate == len(steps) - 1 and "validate.status" in str(steps[gate]["condition"])
    assert "exit 1" in str(steps[gate]["pwsh"])


def run_github_step(name: str, cwd: Path, head: str, bin_dir: str = str(Path(sys.executable).parent)
                    ) -> dict[str, str]:
    """Run a bash step of the workflow as the runner would, with the pull request's values filled in."""
    step = next(s for s in github_steps() if s.get("name") == name)
    script = str(step["run"]).replace("${{ github.base_ref }}", "main").replace(
        "${{ github.event.pull_request.head.sha }}", head)
    outputs = cwd / "github-output"
    outputs.write_text("")
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, check=True,
                   env={**os.environ, **ENV, "GITHUB_OUTPUT": str(outputs), "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                   capture_output=True, text=True, timeout=120)
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines())


def test_the_github_plan_step_records_a_failed_plan_and_still_writes_the_comment(repo: git.Repo,
                                                                                   tmp_path: Path) -> None:
    diverged(repo, ("deployments.yaml", "rerun: IfFailed", "rerun: Always"),
             ("deployments.yaml", "rerun: IfFailed", "rerun: Never"))
    checkout = tmp_path / "checkout"
    git.Repo.clone_from(repo.working_tree_dir, checkout)  # origin/main, as actions/checkout with fetch-depth 0
    head = repo.commit("feature").hexsha
    assert run_github_step("Plan what merging does", checkout, head) == {"status": "1"}
    comment = (checkout / "plan.md").read_text()  # the comment to post says why there is no plan
    assert comment.startswith("<!-- configmgr-ts-reconciler:plan -->\n")
    assert "conflicts in manifests/deployments.yaml" in comment
    assert run_github_step("Validate", checkout, head) == {"status": "0"}
    merged = repo.commit("main").hexsha  # main into itself: a plan, nothing blocked
    assert run_github_step("Plan what merging does", checkout, merged) == {"status": "0"}
    assert (checkout / "plan.md").read_text().startswith("<!-- configmgr-ts-reconciler:plan -->\n")


def test_the_github_plan_step_posts_the_error_output_when_the_tool_wrote_no_comment(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "reconcile").write_text("#!/bin/sh\necho 'Traceback: something broke' >&2\nexit 1\n")
    (fake / "reconcile").chmod(0o755)
    outputs = run_github_step("Plan what merging does", tmp_path, "feature", bin_dir=str(fake))
    assert outputs == {"status": "1"}
    comment = (tmp_path / "plan.md").read_text()
    assert comment.startswith("<!-- configmgr-ts-reconciler:plan -->\n**No plan")
    assert "Traceback: something broke" in comment


# -- damaged objects: which ref, which object, what to do ------------------------------------------------------


def damage_loose(repo: git.Repo, sha: str) -> None:
    """Overwrite a loose object with bytes that are not zlib data, as a failing disk or a killed copy leaves it."""
    path = Path(repo.git_dir) / "objects" / sha[:2] / sha[2:]
    path.chmod(0o644)
    path.write_bytes(b"not zlib data: the disk failed here")


def damage_packed(git_dir: Path, sha: str) -> None:
    """Flip bytes inside one object's compressed data in a pack, as a bad sector would."""
    index = next((git_dir / "objects" / "pack").glob("*.idx"))
    listing = git.Git(git_dir).verify_pack("-v", str(index))
    offset = next(int(line.split()[4]) for line in listing.splitlines() if line.startswith(sha))
    pack = index.with_suffix(".pack")
    pack.chmod(0o644)
    data = bytearray(pack.read_bytes())
    for i in range(offset + 8, offset + 24):
        data[i] ^= 0xFF
    pack.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["the commit", "a tree of this commit", "the manifests folder's tree",
                                  "the blob of this file"])
def test_a_damaged_object_names_the_ref_the_object_and_git_fsck(repo: git.Repo, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli
    from reconciler.source.git import DamagedObjectError
    from reconciler.source.select import load_ref

    sha = {"the commit": repo.head.commit.hexsha, "a tree of this commit": repo.head.commit.tree.hexsha,
           "the manifests folder's tree": repo.git.rev_parse("HEAD:manifests"),
           "the blob of this file": repo.git.rev_parse("HEAD:manifests/deployments.yaml")}[what]
    damage_loose(repo, sha)
    with pytest.raises(DamagedObjectError) as raised:
        load_ref(str(repo.working_tree_dir), "main", "manifests", tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith("main:manifests/deployments.yaml: the blob of this file" if "blob" in what
                              else "main: ") and f"(object {sha})" in message
    assert "is corrupt" in message and f"run `git fsck` in {repo.working_tree_dir}" in message
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["apply", "manifests", "--repo", str(repo.working_tree_dir), "--ref", "main",
                                      "--dry-run"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert sha in result.output and "Traceback" not in result.output


def test_a_damaged_object_in_a_pull_request_merge_is_named(repo: git.Repo, tmp_path: Path) -> None:
    from reconciler.source.git import DamagedObjectError
    from reconciler.source.select import load_pair

    # Only the branch changed deployments.yaml: the merge takes its blob as it is and the plan reads it.
    diverged(repo, ("task-sequences.yaml", "Module - BIOS settings", "Module - Firmware settings"),
             ("deployments.yaml", "rerun: IfFailed", "rerun: Always"))
    blob = repo.git.rev_parse("feature:manifests/deployments.yaml")
    damage_loose(repo, blob)
    with pytest.raises(DamagedObjectError) as raised:
        load_pair(str(repo.working_tree_dir), "main", "feature", "manifests", tmp_path / "cache")
    assert str(raised.value).startswith("feature:manifests/deployments.yaml: the blob of this file")
    assert f"(object {blob})" in str(raised.value) and "git fsck" in str(raised.value)


def test_a_damaged_object_git_must_merge_is_named(repo: git.Repo, tmp_path: Path) -> None:
    from reconciler.source.git import DamagedObjectError
    from reconciler.source.select import load_pair

    # Both sides changed deployments.yaml: merge-tree itself reads the branch's blob.
    diverged(repo, ("deployments.yaml", "rerun: IfFailed", "rerun: Always"),
             ("deployments.yaml", "schedule: {rerun: Always}", "schedule: {rerun: Never}"))
    blob = repo.git.rev_parse("feature:manifests/deployments.yaml")
    damage_loose(repo, blob)
    with pytest.raises(DamagedObjectError) as raised:
        load_pair(str(repo.working_tree_dir), "main", "feature", "manifests", tmp_path / "cache")
    assert str(raised.value).startswith("main+feature: ") and blob in str(raised.value)


def test_a_damaged_cached_clone_says_to_delete_it(repo: git.Repo, tmp_path: Path) -> None:
    from reconciler.source.git import DamagedObjectError

    url = Path(repo.working_tree_dir).as_uri()
    clone = GitRepository(url, tmp_path / "cache")
    assert clone.mirror is not None and (clone.mirror / "objects" / "pack").is_dir()
    blob = repo.git.rev_parse("HEAD:manifests/deployments.yaml")
    damage_packed(clone.mirror, blob)
    again = GitRepository(url, tmp_path / "cache")
    with pytest.raises(DamagedObjectError) as raised:
        load_revision(again, again.resolve("main"), "manifests")
    message = str(raised.value)
    assert blob in message
    assert f"the cached clone {clone.mirror}: delete that folder and it is cloned again" in message
