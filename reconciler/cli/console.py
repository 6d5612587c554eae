"""``reconcile site disable|enable|edit-ts|edit-deployment|set-variable|fail-content|heal-content``.

Console changes on the embedded site, to try drift: each does what an administrator does in the ConfigMgr
console, and the next plan shows it as drift (and applying reverts it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from reconciler.cli.common import open_site_for
from reconciler.cli.site import site_group
from reconciler.site import console

_site_option = click.option(
    "--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The embedded site file (default: .reconcile/site.db in this folder or the nearest one above it).")


def _change(site_path: Path | None, make: Callable[..., str | list[str]], *args: object, **kwargs: object) -> None:
    """Open the embedded site for writing, make the change, say what changed."""
    site = open_site_for(site_path, read_only=False)
    try:
        done = make(site, *args, **kwargs)
    finally:
        site.close()
    for line in [done] if isinstance(done, str) else done:
        click.echo(line)
    click.echo("the next plan shows this as drift; applying reverts it", err=True)


@site_group.command("disable")
@click.argument("task_sequence")
@_site_option
def site_disable(task_sequence: str, site_path: Path | None) -> None:
    """Disable TASK_SEQUENCE (PackageID or console name) as the console's Disable does."""
    _change(site_path, console.set_enabled, task_sequence, False)


@site_group.command("enable")
@click.argument("task_sequence")
@_site_option
def site_enable(task_sequence: str, site_path: Path | None) -> None:
    """Enable TASK_SEQUENCE (PackageID or console name) as the console's Enable does."""
    _change(site_path, console.set_enabled, task_sequence, True)


@site_group.command("edit-ts")
@click.argument("task_sequence")
@click.option("--name", default=None, help="New console name.")
@click.option("--description", default=None, help="New description.")
@click.option("--step", default=None, metavar="STEP_NAME", help="A Run Command Line step, by name (with "
              "--command-line).")
@click.option("--command-line", default=None, help="The step's new command line.")
@_site_option
def site_edit_ts(task_sequence: str, name: str | None, description: str | None, step: str | None,
                 command_line: str | None, site_path: Path | None) -> None:
    """Edit TASK_SEQUENCE as in the console: rename it, change its description or a step's command line."""
    _change(site_path, console.edit_task_sequence, task_sequence, name=name, description=description, step=step,
            command_line=command_line)


@site_group.command("edit-deployment")
@click.argument("deployment")
@click.option("--comment", default=None, help="New comment.")
@click.option("--available-at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
              default=None, help="When the deployment becomes available (2026-12-01T08:00).")
@click.option("--at", "at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
              default=None, help="Replace the timed assignments with one at this time (2026-12-06T20:00).")
@click.option("--weekly", default=None, metavar="DAY", help="With --at: repeat weekly on this day (Saturday).")
@click.option("--every-weeks", type=click.IntRange(1, 4), default=1, show_default=True,
              help="With --weekly: every 1 to 4 weeks.")
@_site_option
def site_edit_deployment(deployment: str, comment: str | None, available_at: datetime | None, at: datetime | None,
                         weekly: str | None, every_weeks: int, site_path: Path | None) -> None:
    """Change DEPLOYMENT's schedule or comment as in the console (DEPLOYMENT is its ID, such as PS100018)."""
    _change(site_path, console.edit_deployment, deployment, comment=comment, available_at=available_at, at=at,
            weekly=weekly, every_weeks=every_weeks)


@site_group.command("set-variable")
@click.argument("collection")
@click.argument("name")
@click.argument("value")
@_site_option
def site_set_variable(collection: str, name: str, value: str, site_path: Path | None) -> None:
    """Add a variable NAME=VALUE to COLLECTION (name or ID), or change its value, as the console's collection
    properties do; the collection's other variables stay."""
    _change(site_path, console.set_collection_variable, collection, name, value)


@site_group.command("fail-content")
@click.argument("package")
@click.argument("dp")
@_site_option
def site_fail_content(package: str, dp: str, site_path: Path | None) -> None:
    """Mark PACKAGE's content (name or PackageID) on distribution point DP as failed, as a distribution error."""
    _change(site_path, console.set_content, package, dp, True)


@site_group.command("heal-content")
@click.argument("package")
@click.argument("dp")
@_site_option
def site_heal_content(package: str, dp: str, site_path: Path | None) -> None:
    """Mark PACKAGE's content on DP as installed at the package's current version."""
    _change(site_path, console.set_content, package, dp, False)
