"""``reconcile controller pause`` and ``resume``: stop every controller of a site from applying, and let it go on."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.actor import resolve_actor
from reconciler.cli.common import (
    EXIT_ERROR,
    StateParam,
    actor_option,
    config_option,
    open_for,
    settings_near,
    site_for,
    site_options,
)
from reconciler.cli.controller import controller_command
from reconciler.errors import ReconcilerError
from reconciler.pause import pause_controllers, resume_controllers
from reconciler.site.options import SiteArguments

_state_option = click.option("--state", "state_path", type=StateParam(), default=None,
                             help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a "
                                  "URL).")


@controller_command.command("pause")
@click.option("--reason", default="", help="Why (a change freeze, a rollback, an incident): shown by status.")
@actor_option
@site_options
@_state_option
@config_option
def pause_command(reason: str, actor: str | None, site_path: Path | str | None, site_args: SiteArguments,
                  state_path: Path | None, config_file: Path | None) -> None:
    """Pause the site's controllers: they go on ticking and reporting drift, and apply nothing until resumed.

    A paused controller releases the site's lease, so a one-shot apply or 'reconcile rollback' can run.
    The pause is kept in the state store (who, when, why) and shown by status, /status and the
    reconcile_paused metric.
    """
    settings = settings_near(config_file)
    target, reach = site_for(site_args, settings)
    workspace = open_for(target, state_path, read_only=True, options=reach, settings=settings)
    try:
        pause = pause_controllers(workspace.state, workspace.site.site_code, resolve_actor(actor), reason)
    except ReconcilerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        workspace.close()
    click.echo(f"paused the controllers of site {pause.site}" + (f" ({pause.reason})" if pause.reason else "")
               + "; they report drift and apply nothing until 'reconcile controller resume'")


@controller_command.command("resume")
@click.option("--reason", default="", help="Why the pause ends, for the audit.")
@actor_option
@site_options
@_state_option
@config_option
def resume_command(reason: str, actor: str | None, site_path: Path | str | None, site_args: SiteArguments,
                   state_path: Path | None, config_file: Path | None) -> None:
    """Resume the site's controllers: their next tick applies what they reported while paused."""
    settings = settings_near(config_file)
    target, reach = site_for(site_args, settings)
    workspace = open_for(target, state_path, read_only=True, options=reach, settings=settings)
    try:
        lifted = resume_controllers(workspace.state, workspace.site.site_code, resolve_actor(actor), reason)
    finally:
        workspace.close()
    if lifted is None:
        click.echo(f"the controllers of site {workspace.site.site_code} were not paused; nothing to resume")
        return
    click.echo(f"resumed the controllers of site {lifted.site} (paused by {lifted.actor}); their next tick applies "
               "what they reported")
