"""``reconcile audit``: who changed the site, from what, and what was refused."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.audit import parse_object, parse_since, read_audit
from reconciler.cli.app import cli
from reconciler.cli.common import StateParam, config_option, open_for, settings_near, site_for, site_options
from reconciler.render import audit as render_audit
from reconciler.site.options import SiteArguments


@cli.command("audit")
@click.option("--since", default=None, metavar="DATE|DURATION",
              help="Only events since a date (2026-05-01, 2026-05-01T10:00Z; UTC unless an offset is given) or a "
                   "duration back from now (90m, 24h, 7d, 2w).")
@click.option("--object", "obj", default=None, metavar="KIND/NAME",
              help="Only events about this object (and the applies that touched it).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the newest this many events.")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
@site_options
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@config_option
def audit_command(since: str | None, obj: str | None, limit: int | None, output: str, site_path: Path | str | None,
                  site_args: SiteArguments, state_path: Path | None, config_file: Path | None) -> None:
    """The audit trail, oldest first: every apply (who, from which commit and plan, each action's changes with
    secrets as (sensitive)), high-risk acknowledgements, refused or blocked attempts, and controller pauses.

    Who is --actor, else RECONCILE_ACTOR, else the CI's variable (GITHUB_ACTOR, BUILD_REQUESTEDFOR,
    GITLAB_USER_LOGIN), else the OS user of the process that applied.
    """
    since_at = parse_since(since) if since else None
    key = parse_object(obj) if obj else None
    settings = settings_near(config_file)
    target, reach = site_for(site_args, settings)
    workspace = open_for(target, state_path, read_only=True, options=reach, settings=settings)
    try:
        events = read_audit(workspace.state, since_at, key, limit)
    finally:
        workspace.close()
    if output == "json":
        render_audit.render_json(events, sys.stdout)
    else:
        render_audit.render_text(events, sys.stdout)
