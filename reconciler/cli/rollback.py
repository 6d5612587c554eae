"""``reconcile rollback APPLY_ID``: plan the site back to what an earlier apply wrote, show it, apply it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from reconciler.actor import resolve_actor
from reconciler.cli.app import cli
from reconciler.cli.common import (
    EXIT_ERROR,
    StateParam,
    actor_option,
    cache_folder,
    open_for,
    refuse_read_only,
    settings_for,
    settings_near,
    settings_options,
    site_for,
    site_options,
    use_color,
)
from reconciler.cli.run import _finish, _invalid, _print_plan, _progress_printer, _show_and_apply
from reconciler.lease import DEFAULT_LEASE_SECONDS, LeaseKeeper
from reconciler.pipeline import ApplyOptions, Pass, PlanOptions, Stage
from reconciler.rollback import RollbackRefused, controller_following, folder_of, rollback_source
from reconciler.site.options import SiteArguments
from reconciler.source.git import GitSourceError
from reconciler.source.select import Provenance, load_ref


@cli.command("rollback")
@click.argument("apply_id")
@click.option("--repo", default=None, metavar="PATH_OR_URL",
              help="The repository that holds the apply's commit (default: the one the apply recorded).")
@click.option("--prune", is_flag=True,
              help="Also delete managed objects that the apply's manifests did not describe (made by later applies).")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@click.option("--output", "-o", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True,
              help="How the rollback's plan is shown: text, json (the plan document) or markdown.")
@click.option("--no-color", is_flag=True, help="No colours (also when NO_COLOR is set).")
@click.option("--lease-seconds", type=click.FloatRange(1), default=DEFAULT_LEASE_SECONDS, show_default=True,
              help="The site's lease lapses this long after this process stops renewing it (if it dies).")
@actor_option
@site_options
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@settings_options
def rollback_command(apply_id: str, repo: str | None, prune: bool, yes: bool, output: str, no_color: bool,
                     lease_seconds: float, actor: str | None, site_path: Path | str | None, site_args: SiteArguments,
                     state_path: Path | str | None, config_file: Path | None, secrets_dir: Path | None) -> None:
    """Plan the site back to what apply APPLY_ID wrote (an ID from 'reconcile history'), show the plan, and apply it
    after confirmation (--yes without a terminal).

    The manifests are those of the apply's commit, read from its repository (--repo if it moved); an apply made
    from a folder outside Git, or with uncommitted changes, has no commit to go back to and is refused. While a
    controller with self-heal follows the branch, it would revert the rollback on its next tick: pause it first
    ('reconcile controller pause'), and revert the change on the branch before resuming it.
    """
    target, reach = site_for(site_args, settings_near(config_file))
    refuse_read_only(reach, target, "'reconcile rollback'")
    workspace = open_for(target, state_path, options=reach)
    keeper = LeaseKeeper(workspace.state, workspace.site.site_code, "apply", lease_seconds)
    who = resolve_actor(actor)
    try:
        site_code = workspace.site.site_code
        refusals = Pass(workspace.site, workspace.state, settings_near(config_file), Path("."), keeper, actor=who,
                        record={"rollback_of": apply_id})
        try:
            source = rollback_source(workspace.state, apply_id, repo)
            following = controller_following(workspace.state, site_code)
            if following is not None:
                raise RollbackRefused(f"refusing to roll back to apply {apply_id}: {following}")
        except RollbackRefused as exc:
            refusals.refuse("rollback", str(exc))
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        folder = folder_of(source)
        settings = settings_for(folder, config_file, secrets_dir)
        try:
            desired, loaded, _ = load_ref(source.repo, source.sha, source.path, cache_folder(target),
                                          max_file_bytes=settings.limits.max_manifest_bytes)
        except GitSourceError as exc:
            click.echo(f"error: rolling back to apply {apply_id} needs commit {source.sha[:12]} of {source.repo}: "
                       f"{exc}; name the repository that holds it with --repo", err=True)
            sys.exit(EXIT_ERROR)
        provenance = Provenance(source.ref, source.sha, loaded.source)
        step = Pass(workspace.site, workspace.state, settings, folder, keeper, actor=who, provenance=provenance,
                    record={"rollback_of": apply_id})
        click.echo(f"rolling back to apply {apply_id}: the manifests of commit {source.sha[:12]} "
                   f"({source.ref or 'no branch'}) at {source.repo}:{source.path}", err=True)
        plan, stopped = step.plan(desired, PlanOptions(prune=prune, targets=source.targets))
        options: dict[str, Any] = {"output": output, "no_color": no_color, "detailed_exitcode": False}
        if stopped is not None:
            if stopped.stage is Stage.INVALID:
                _invalid(desired, stopped, output)
            if stopped.stage is Stage.BLOCKED and plan is not None:
                _print_plan(plan, output, use_color(no_color))
                click.echo("the plan has blocked items: nothing was applied", err=True)
                sys.exit(EXIT_ERROR)
            _finish(stopped, output, False, site_code)
        assert plan is not None
        apply = ApplyOptions(progress=_progress_printer(), notice=lambda message: click.echo(message, err=True))
        _show_and_apply(step, plan, provenance, apply, yes, options, site_code)
    finally:
        keeper.release()
        workspace.close()
