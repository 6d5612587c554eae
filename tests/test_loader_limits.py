"""What a manifests folder or Git tree may make the loader read: symlinks, sizes, nesting, echoed values.

Manifests come from pull requests whose authors are not the people who apply them, so one rule holds for a
folder and for a Git tree: a symlink is followed when it stays inside the manifests root and is an error
otherwise; a file too large or not a file is never read; nesting is bounded; a message quotes a user's value
short; and a plan is never made (so nothing is pruned) while any manifest could not be read.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import git
import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.config import DEFAULT_MAX_MANIFEST_BYTES
from reconciler.errors import QUOTE_CHARS, Severity, shorten
from reconciler.plan.planner import IncompleteManifests, make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.source import yamlfile
from reconciler.source.git import GitRepository, load_revision
from reconciler.source.loader import MAX_GROUP_DEPTH, DesiredState, load
from reconciler.source.select import load_ref
from reconciler.source.yamlfile import MAX_YAML_DEPTH, too_deep
from reconciler.state import StateStore
from reconciler.validate import has_errors, validate

API = "apiVersion: configmgr.gitops.io/v1alpha1\n"


def sequence(name: str, console: str | None = None) -> str:
    return (f"{API}kind: TaskSequence\nmetadata: {{name: {name}}}\nspec:\n  name: {console or name.title()}\n"
            "  steps:\n  - name: Hello\n    type: RunCommandLine\n    settings: {commandLine: cmd.exe /c echo}\n")


def deployment(name: str, ts: str) -> str:
    return (f"{API}kind: TaskSequenceDeployment\nmetadata: {{name: {name}}}\nspec:\n  taskSequence: {ts}\n"
            "  collection: {name: OSD Lab}\n  purpose: Available\n")


def errors(state: DesiredState) -> dict[str, str]:
    """Error findings by file name relative to the manifests root (Git names drop ``ref:`` too)."""
    out = {}
    for finding in validate(state):
        if finding.severity is Severity.ERROR:
            name = finding.source.file.split(":", 1)[-1]
            out[name.split("manifests/", 1)[-1]] = finding.message
    return out


def hostile_tree(root: Path) -> Path:
    """A manifests folder beside a folder outside it, with every kind of symlink the rule distinguishes."""
    manifests, outside = root / "manifests", root / "outside"
    (manifests / "sub").mkdir(parents=True)
    (manifests / ".shared").mkdir()
    outside.mkdir()
    (manifests / "main.yaml").write_text(sequence("main"))
    (manifests / ".shared" / "linked.yaml").write_text(sequence("linked"))  # read only through a symlink
    (outside / "evil.yaml").write_text(sequence("evil"))
    (outside / "more.yaml").write_text(sequence("more"))
    (root / "README.md").write_text("# notes\n")
    links = {
        "inside.yaml": "main.yaml",  # the same file again: read once
        "shared": ".shared",  # a folder inside the root
        "evil.yaml": "../outside/evil.yaml",
        "outside-folder": "../outside",
        "zero.yaml": "/dev/zero",
        "dangling.yaml": "missing.yaml",
        "loop-a.yaml": "loop-b.yaml",
        "loop-b.yaml": "loop-a.yaml",
        "sub/up": "..",
        "readme.md": "../README.md",  # not a manifest: left alone wherever it points
    }
    for name, target in links.items():
        os.symlink(target, manifests / name)
    (manifests / "reconcile.yaml").write_text("limits: {maxManifestBytes: 2048}\n")  # settings, not a manifest
    return manifests


EXPECTED_REFUSED = {"evil.yaml", "outside-folder", "zero.yaml", "dangling.yaml", "loop-a.yaml", "loop-b.yaml",
                    "sub/up"}


def test_a_folder_follows_symlinks_inside_the_root_and_refuses_the_rest(tmp_path: Path) -> None:
    state = load(hostile_tree(tmp_path))
    assert sorted(o.name for o in state.objects) == ["linked", "main"]
    found = errors(state)
    assert set(found) == EXPECTED_REFUSED
    assert "../outside/evil.yaml" in found["evil.yaml"] and "outside the manifests folder" in found["evil.yaml"]
    assert "must point to a file or folder inside the manifests folder" in found["outside-folder"]
    assert "'/dev/zero'" in found["zero.yaml"]
    assert "dangles" in found["dangling.yaml"] and "loops" in found["loop-a.yaml"]
    assert "a folder that contains it (a loop)" in found["sub/up"]
    assert set(state.unread) == {str(tmp_path / "manifests" / name) for name in EXPECTED_REFUSED}


def test_a_git_tree_applies_the_same_symlink_rule(tmp_path: Path) -> None:
    hostile_tree(tmp_path)
    repo = git.Repo.init(tmp_path, initial_branch="main")
    repo.git.add(A=True)
    repo.git.commit("-m", "hostile", env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                                          "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})
    source = GitRepository(str(tmp_path), tmp_path / "cache")
    state = load_revision(source, source.resolve("main"), "manifests")
    assert sorted(o.name for o in state.objects) == ["linked", "main"]
    found = errors(state)
    assert set(found) == EXPECTED_REFUSED
    assert "found str" not in " ".join(found.values())
    assert "absolute path outside the repository" in found["zero.yaml"]
    assert "../outside/evil.yaml" in found["evil.yaml"] and "outside the manifests folder" in found["evil.yaml"]


def test_reconcile_yaml_at_the_root_is_settings_not_a_manifest(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    (manifests / "team").mkdir(parents=True)
    (manifests / "reconcile.yaml").write_text("limits: {maxManifestBytes: 4096}\n")
    (manifests / "team" / "ts.yaml").write_text(sequence("team"))
    state = load(manifests)
    assert [o.name for o in state.objects] == ["team"] and not validate(state)
    assert state.files == 1


def test_a_fifo_named_like_a_manifest_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    os.mkfifo(manifests / "pipe.yaml")
    (manifests / "ok.yaml").write_text(sequence("ok"))
    result: list[DesiredState] = []
    reader = threading.Thread(target=lambda: result.append(load(manifests)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert result, "loading waited on the FIFO"
    assert errors(result[0]) == {"pipe.yaml": "is a FIFO; a manifest is a regular file"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder whatever its permissions")
def test_a_folder_that_cannot_be_read_is_an_error(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    (manifests / "locked").mkdir(parents=True)
    (manifests / "locked" / "ts.yaml").write_text(sequence("locked"))
    (manifests / "locked").chmod(0)
    try:
        found = errors(load(manifests))
    finally:
        (manifests / "locked").chmod(stat.S_IRWXU)
    assert "folder cannot be read" in found["locked"]


def test_a_folder_whose_path_is_too_long_to_open_is_an_error_not_skipped(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "ok.yaml").write_text(sequence("ok"))
    fd = os.open(manifests, os.O_RDONLY)
    try:
        for _ in range(24):  # 24 x 201 characters: longer than PATH_MAX, so no path reaches the bottom
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with os.fdopen(os.open("deep.yaml", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as handle:
            handle.write(sequence("deep"))
    finally:
        os.close(fd)
    state = load(manifests)
    [finding] = [f for f in validate(state) if f.severity is Severity.ERROR]
    assert "folder cannot be read" in finding.message and "would be missing from the plan" in finding.message
    assert state.unread == [finding.source.file]


# -- nothing is planned, so nothing is pruned, while a manifest could not be read ------------------------


def refuse_by_folder_symlink(manifests: Path) -> None:
    shutil.move(manifests / "deployments", manifests.parent / "elsewhere")
    os.symlink("../elsewhere", manifests / "deployments")


def refuse_by_file_symlink(manifests: Path) -> None:
    shutil.move(manifests / "deployments" / "lab.yaml", manifests.parent / "lab.yaml")
    os.symlink("../../lab.yaml", manifests / "deployments" / "lab.yaml")


def refuse_by_size(manifests: Path) -> None:
    with (manifests / "deployments" / "lab.yaml").open("ab") as handle:
        handle.truncate(DEFAULT_MAX_MANIFEST_BYTES + 1)  # sparse: no disk, no time


@pytest.mark.parametrize("refuse", [refuse_by_folder_symlink, refuse_by_file_symlink, refuse_by_size])
def test_prune_deletes_nothing_while_a_manifest_is_refused(tmp_path: Path, refuse) -> None:  # type: ignore[no-untyped-def]
    manifests = tmp_path / "manifests"
    (manifests / "deployments").mkdir(parents=True)
    (manifests / "sequences.yaml").write_text(sequence("lab-build") + "---\n" + sequence("lab-capture"))
    (manifests / "deployments" / "lab.yaml").write_text(deployment("lab-build", "lab-build") + "---\n"
                                                        + deployment("lab-capture", "lab-capture"))
    site_path = tmp_path / "site.db"
    with EmbeddedSite(site_path) as site:
        add_demo_inventory(site)
    runner = CliRunner()
    applied = runner.invoke(cli, ["apply", str(manifests), "--site", str(site_path), "--yes"])
    assert applied.exit_code == 0, applied.output
    refuse(manifests)
    pruned = runner.invoke(cli, ["apply", str(manifests), "--site", str(site_path), "--yes", "--prune",
                                 "--max-delete", "100"])
    assert pruned.exit_code == 1, pruned.output
    assert "deployments" in pruned.output and "error" in pruned.output
    assert pruned.exception is None or isinstance(pruned.exception, SystemExit)
    with EmbeddedSite(site_path) as site:
        assert len(site.read().deployments) == 2


# -- sizes -------------------------------------------------------------------------------------------------


LOAD_IN_A_SMALL_PROCESS = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1024 * 2**20, 1024 * 2**20))  # reading 8 GiB whole cannot fit
from reconciler.source.loader import load
from reconciler.validate import validate
state = load(sys.argv[1])
print(json.dumps({"objects": [o.name for o in state.objects], "findings": [f.render() for f in validate(state)]}))
"""


def test_a_file_over_the_limit_is_refused_by_its_size_without_being_read(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "ok.yaml").write_text(sequence("ok"))
    with (manifests / "huge.yaml").open("wb") as handle:
        handle.truncate(8 * 2**30)  # sparse: 8 GiB that take no disk
    run = subprocess.run([sys.executable, "-c", LOAD_IN_A_SMALL_PROCESS, str(manifests)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["objects"] == ["ok"]
    [message] = result["findings"]
    assert f"is {8 * 2**30:,} bytes" in message and f"at most {DEFAULT_MAX_MANIFEST_BYTES:,} bytes" in message
    assert "huge.yaml" in message and "maxManifestBytes" in message


def test_the_size_limit_is_a_parameter_in_folder_and_git_modes(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "small.yaml").write_text(sequence("small"))
    (manifests / "big.yaml").write_text(sequence("big") + "#" * 5000 + "\n")
    size = (manifests / "big.yaml").stat().st_size
    folder = load(manifests, max_file_bytes=4096)
    assert [o.name for o in folder.objects] == ["small"]
    assert f"is {size:,} bytes; a manifest file may be at most 4,096 bytes" in errors(folder)["big.yaml"]
    repo = git.Repo.init(tmp_path, initial_branch="main")
    repo.git.add(A=True)
    repo.git.commit("-m", "sizes", env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})
    from_git, _, _ = load_ref(str(tmp_path), "main", "manifests", tmp_path / "cache", max_file_bytes=4096)
    assert [o.name for o in from_git.objects] == ["small"]
    assert f"is {size:,} bytes; a manifest file may be at most 4,096 bytes" in errors(from_git)["big.yaml"]
    assert not has_errors(validate(load_ref(str(tmp_path), "main", "manifests", tmp_path / "cache")[0]))


def test_a_library_plan_of_manifests_that_could_not_all_be_read_is_refused(tmp_path: Path) -> None:
    """Callers that skip validation still get no plan (and so no prune) from an incomplete set of manifests."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "small.yaml").write_text(sequence("small"))
    (manifests / "big.yaml").write_text(sequence("big") + "#" * 5000 + "\n")
    desired = load(manifests, max_file_bytes=4096)
    state = StateStore(tmp_path / "state.db")
    with EmbeddedSite(tmp_path / "site.db") as site, \
            pytest.raises(IncompleteManifests, match=r"could not be read .*big\.yaml.*nothing is pruned"):
        make_plan(desired, site.read(), state, prune=True)
    state.close()


# -- nesting -----------------------------------------------------------------------------------------------


def nested(groups: int, conditions: int, command: str = "echo", list_condition: bool = False) -> str:
    """A sequence whose one step sits in ``groups`` nested groups, under a condition nested ``conditions`` deep."""
    lines = [API.strip(), "kind: TaskSequence", "metadata: {name: deep}", "spec:", "  name: Deep", "  steps:"]
    pad = "  "
    for level in range(groups):
        lines += [f"{pad}- group: Level {level + 1}", f"{pad}  steps:"]
        pad += "    "
    condition = "{variable: {name: OSDReady, operator: exists}}"
    for level in range(conditions):
        condition = f"{{{('not', 'and', 'or')[level % 3]}: [{condition}]}}"
    if list_condition:
        condition = f"[{condition}]"
    lines += [f"{pad}- name: Leaf", f"{pad}  type: RunCommandLine", f"{pad}  condition: {condition}",
              f"{pad}  settings: {{commandLine: cmd.exe /c {command}}}"]
    return "\n".join(lines) + "\n"


def depth_of(text: str) -> int:
    data = yaml.safe_load(text)
    return next(d for d in range(1, 1000) if not too_deep(data, d))


def test_a_sequence_at_both_nesting_limits_goes_through_every_stage(tmp_path: Path) -> None:
    text = nested(MAX_GROUP_DEPTH, 13)
    assert depth_of(text) == MAX_YAML_DEPTH
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "deep.yaml").write_text(text)
    site, runner = str(tmp_path / "site.db"), CliRunner()

    def run(*args: str, codes: tuple[int, ...] = (0,)) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code in codes, result.output
        return result.output

    run("validate", str(manifests))
    run("site", "init", "--site", site)
    run("apply", str(manifests), "--site", site, "--yes")
    (manifests / "deep.yaml").write_text(nested(MAX_GROUP_DEPTH, 13, "changed"))
    for output in ("text", "json", "markdown"):
        assert "changed" in run("apply", str(manifests), "--site", site, "--dry-run", "--detailed-exitcode",
                                "--output", output, codes=(2,))
    run("apply", str(manifests), "--site", site, "--yes")
    assert "cmd.exe /c changed" in run("convert", "--to", "xml", str(manifests / "deep.yaml"))
    run("export", "--site", site, "--out", str(tmp_path / "exported"))
    run("site", "show", "--site", site)


def test_one_group_deeper_is_refused_at_the_line_of_that_group(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text(nested(MAX_GROUP_DEPTH + 1, 0))
    [finding] = validate(load(tmp_path / "deep.yaml"))
    assert finding.severity is Severity.ERROR and finding.rule == "depth"
    assert finding.source.line == 6 + 2 * MAX_GROUP_DEPTH + 1  # the line of group Level 17
    assert f"at most {MAX_GROUP_DEPTH} groups" in finding.message


def test_one_level_of_yaml_deeper_is_refused_at_the_first_node_too_deep(tmp_path: Path) -> None:
    text = nested(MAX_GROUP_DEPTH, 13, list_condition=True)
    assert depth_of(text) == MAX_YAML_DEPTH + 1
    (tmp_path / "deep.yaml").write_text(text)
    [finding] = validate(load(tmp_path / "deep.yaml"))
    assert finding.rule == "depth" and f"at most {MAX_YAML_DEPTH}" in finding.message
    leaf_condition = 6 + 2 * MAX_GROUP_DEPTH + 3  # the header, two lines per group, the name and type
    assert finding.source.line == leaf_condition and finding.path.endswith("variable")


def test_a_yaml_bomb_of_nesting_is_refused_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text(f"{API}kind: TaskSequence\nmetadata: {{name: x}}\nspec:\n  name: X\n"
                                        f"  steps: {'[' * 900}{']' * 900}\n")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    assert f"nest more than {MAX_YAML_DEPTH} levels" in result.output


# -- values echoed in messages ------------------------------------------------------------------------------


def test_messages_quote_a_huge_value_by_a_short_prefix_and_its_length(tmp_path: Path) -> None:
    big = "x" * (5 * 2**20)
    files = {
        "description.yaml": f"{API}kind: TaskSequence\nmetadata: {{name: a}}\nspec:\n  name: A\n  description: {big}\n",
        "step-type.yaml": f"{API}kind: TaskSequence\nmetadata: {{name: b}}\nspec:\n  name: B\n  steps:\n"
                          f"  - name: S\n    type: {big}\n",
        "kind.yaml": f"{API}kind: {big}\nmetadata: {{name: c}}\nspec: {{}}\n",
        "api-version.yaml": f"apiVersion: {big}\nkind: TaskSequence\nmetadata: {{name: d}}\nspec: {{}}\n",
        "purpose.yaml": f"{API}kind: TaskSequenceDeployment\nmetadata: {{name: e}}\nspec:\n  taskSequence: a\n"
                        f"  collection: {{name: OSD Pilot}}\n  purpose: {big}\n",
        "name.yaml": f"{API}kind: TaskSequence\nmetadata: {{name: {big}}}\nspec:\n  name: F\n",
        "operator.yaml": f"{API}kind: TaskSequence\nmetadata: {{name: g}}\nspec:\n  name: G\n  steps:\n"
                         f"  - name: S\n    type: Restart\n    condition: {{variable: {{name: X, operator: {big}}}}}\n",
        "number.yaml": f"{API}kind: TaskSequence\nmetadata: {{name: h}}\nspec:\n  name: {'9' * 5000}\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for output in ("text", "json"):
        result = CliRunner().invoke(cli, ["validate", str(tmp_path), "--output", output])
        assert result.exit_code == 1
        assert len(result.output) < 600 * len(files), len(result.output)
        assert result.output.count(f"({len(big):,} characters)") == len(files) - 1
    assert "cannot be read as a number (5,000 digits)" in result.output


def test_shorten_keeps_short_values_and_cuts_long_ones() -> None:
    assert shorten("PS100012") == "'PS100012'"
    cut = shorten("y" * 10**7)
    assert cut == f"'{'y' * QUOTE_CHARS}'… (10,000,000 characters)"
    assert len(shorten(["z" * 10**6] * 3)) <= QUOTE_CHARS + 1


# -- one read and one document composed per field located (item: plans quadratic in one file) ---------------


def test_locating_fields_reads_each_file_once_and_finds_every_document(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    count = 2000
    documents = [deployment(f"dep-{i:04d}", "missing") for i in range(count)]
    (tmp_path / "all.yaml").write_text("\ufeff# deployments\n" + "---\n".join(documents))
    state = load(tmp_path)
    reads: list[str] = []
    inner = state.read_text
    assert inner is not None

    def counting(name: str) -> str:
        reads.append(name)
        return inner(name)

    state.read_text = counting
    composed: list[object] = []

    class CountingLoader(yamlfile._Loader):  # type: ignore[misc, valid-type, name-defined]
        def get_node(self) -> object:
            node = super().get_node()
            composed.append(node)
            return node

    monkeypatch.setattr(yamlfile, "_Loader", CountingLoader)
    lines = [state.locate(obj, ("spec", "taskSequence")).line for obj in state.objects]
    assert len(reads) == 1
    assert len(composed) == count  # one document per field: composing the whole file per field took minutes
    first = 2 + 4  # the BOM line with the comment, then apiVersion, kind, metadata, spec
    assert lines == [first + 8 * i for i in range(count)]


def test_a_manifests_folder_that_is_a_symlink_out_of_its_checkout_is_refused(tmp_path: Path) -> None:
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ts.yaml").write_text(sequence("elsewhere"))
    git.Repo.init(checkout, initial_branch="main")
    os.symlink(elsewhere, checkout / "manifests")  # what a pull request can commit
    os.symlink(elsewhere / "ts.yaml", checkout / "one.yaml")
    for named in (checkout / "manifests", checkout / "one.yaml"):
        state = load(named)
        assert not state.objects and state.unread == [str(named)]
        [finding] = validate(state)
        assert "outside the Git working tree" in finding.message and str(elsewhere) in finding.message
    os.symlink("manifests-real", checkout / "inside")  # a symlinked folder inside the checkout is fine
    (checkout / "manifests-real").mkdir()
    (checkout / "manifests-real" / "ts.yaml").write_text(sequence("inside"))
    assert [o.name for o in load(checkout / "inside").objects] == ["inside"]
