"""CLI habits: the site is found as git finds a repository, completion completes commands, every option has
help, and every JSON document has a format_version and snake_case keys."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.shell_completion import BashComplete

from reconciler.cli import cli
from tests.conftest import run_cli


def test_a_command_in_a_subfolder_uses_the_site_above_it(tmp_path: Path) -> None:
    assert run_cli("site", "init", "--demo", cwd=tmp_path).returncode == 0
    below = tmp_path / "manifests" / "deep"
    below.mkdir(parents=True)
    shown = run_cli("site", "show", cwd=below)
    assert shown.returncode == 0, shown
    assert "created the embedded site" not in shown.stderr
    assert "OSD Pilot" in shown.stdout
    assert not (below / ".reconcile").exists() and not (tmp_path / "manifests" / ".reconcile").exists()


def test_without_a_site_above_the_demo_site_is_created_here_and_the_message_says_where(tmp_path: Path) -> None:
    shown = run_cli("site", "show", cwd=tmp_path)
    assert shown.returncode == 0, shown
    assert "created the embedded site .reconcile/site.db (site PS1) with the demo inventory" in shown.stderr
    assert f"no .reconcile/ folder was found in {tmp_path} or above it" in shown.stderr
    assert (tmp_path / ".reconcile" / "site.db").is_file()


def test_site_init_on_an_existing_site_says_how_to_replace_it(tmp_path: Path) -> None:
    assert run_cli("site", "init", cwd=tmp_path).returncode == 0
    again = run_cli("site", "init", "--demo", cwd=tmp_path)
    assert again.returncode == 1, again
    assert again.stderr.startswith("error: .reconcile/site.db already exists; to replace it")
    assert "reconcile site backup FILE" in again.stderr and ".reconcile/state.db" in again.stderr


def completions(words: list[str], incomplete: str) -> list[str]:
    return [item.value for item in BashComplete(cli, {}, "reconcile", "_RECONCILE_COMPLETE")
            .get_completions(words, incomplete)]


def test_completion_completes_commands_not_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "exhibit.txt").write_text("")
    monkeypatch.chdir(tmp_path)
    assert "export" in completions([], "ex")
    assert "exhibit.txt" not in completions([], "ex")
    assert {"disable", "edit-ts"} <= set(completions(["site"], ""))
    # After a PATH the default command's options complete.
    assert "--dry-run" in completions(["manifests"], "--dry")


def test_completion_scripts_exist_for_bash_zsh_fish_and_powershell() -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files"),
                          ("powershell", "Register-ArgumentCompleter")):
        script = run_cli("completion", shell)
        assert script.returncode == 0 and marker in script.stdout, (shell, script)


def _walk(command: click.Command, path: str) -> list[tuple[str, click.Parameter]]:
    found = [(path, p) for p in command.params if isinstance(p, click.Option)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _walk(sub, f"{path} {name}")
    return found


def test_every_command_and_option_has_help_text() -> None:
    missing = [f"{path} {option.opts[0]}" for path, option in _walk(cli, "reconcile")
               if not option.help and option.opts[0] not in ("--help", "-h", "--version")]
    assert missing == []
    commands = []

    def commands_of(command: click.Command, path: str) -> None:
        if not (command.help or command.short_help):
            commands.append(path)
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                commands_of(sub, f"{path} {name}")

    commands_of(cli, "reconcile")
    assert commands == []
