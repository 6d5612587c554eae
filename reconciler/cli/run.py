"""The main job: ``reconcile plan`` and ``reconcile apply`` (also ``reconcile [PATH]``).

Both run :mod:`reconciler.pipeline`; this module only loads the manifests from where the options say,
shows the plan, asks for confirmation, and turns the outcome into output and an exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from reconciler.actor import Actor, resolve_actor
from reconciler.apply.executor import ActionResult
from reconciler.audit import file_digest
from reconciler.cli.app import cli
from reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    StateParam,
    actor_option,
    cache_folder,
    new_state_option,
    open_for,
    refuse_read_only,
    settings_for,
    settings_options,
    site_for,
    site_options,
    use_color,
)
from reconciler.config import Config
from reconciler.errors import Finding, Severity, Source
from reconciler.lease import DEFAULT_LEASE_SECONDS, LeaseKeeper
from reconciler.pipeline import (
    ApplyOptions,
    Outcome,
    Pass,
    PlanOptions,
    Stage,
    saved_plan,
)
from reconciler.plan.actions import Plan
from reconciler.plan.document import SavedPlan, read_saved_plan, write_saved_plan
from reconciler.plan.planner import MAX_DELETE_PERCENT
from reconciler.render import findings as render_findings
from reconciler.render import plan as render_plan
from reconciler.render import review as render_review
from reconciler.render.plan import plan_document
from reconciler.review import review
from reconciler.site import is_url
from reconciler.source.git import GitSourceError
from reconciler.source.loader import DesiredState
from reconciler.source.select import Provenance, load_folder, load_pair, load_ref


def _plan_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every plan takes: where the manifests, the site and the state are, and what to plan."""
    options = [
        click.argument("path", default="manifests", type=click.Path(path_type=Path)),
        site_options,
        click.option("--state", "state_path", type=StateParam(), default=None,
                     help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL)."),
        click.option("--target", "targets", multiple=True, metavar="KIND/NAME",
                     help="Only these objects (repeatable)."),
        click.option("--prune", is_flag=True, help="Delete managed objects that no manifest describes any more."),
        click.option("--adopt", is_flag=True, help="Take over unmanaged live objects with the same console name."),
        click.option("--max-delete", type=click.FloatRange(0, 100), default=MAX_DELETE_PERCENT, show_default=True,
                     metavar="PERCENT", help="Block a plan that deletes more than this share of the managed objects."),
        click.option("--refresh-secrets", is_flag=True,
                     help="Also read every secret the managed objects use and compare it with the hash stored at the "
                          "last apply, so a rotated password behind an unchanged valueFrom is updated. Without it a "
                          "plan never reads a secret."),
        click.option("--output", "-o", type=click.Choice(["text", "json", "markdown"]), default="text",
                     show_default=True, help="text for people, json for tools (format_version, crds/plan.schema.json) "
                                             "or markdown for a pull request comment."),
        click.option("--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 2 with changes, 1 on error."),
        click.option("--repo", default=None, metavar="PATH_OR_URL",
                     help="Read PATH from this Git repository instead of the file system (no checkout)."),
        click.option("--ref", default=None, help="Branch, tag or commit to read with --repo (default HEAD)."),
        click.option("--base", default=None, help="Pull request plan: the target branch (with --head)."),
        click.option("--head", default=None, help="Pull request plan: the branch to merge."),
        click.option("--no-color", is_flag=True, help="No colours (also when NO_COLOR is set)."),
        new_state_option,
        settings_options,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _load(path: Path, repo: str | None, ref: str | None, base: str | None, head: str | None, settings: Config,
          cache_dir: Path, output: str) -> tuple[DesiredState, Provenance, Any]:
    """The manifests and where they came from; for a pull request also (base manifests, base revision)."""
    limit = settings.limits.max_manifest_bytes
    try:
        if base or head:
            if not (base and head):
                raise click.UsageError("a pull request plan needs both --base and --head")
            base_state, base_rev, desired, head_rev = load_pair(repo or ".", base, head, path.as_posix(), cache_dir,
                                                                    max_file_bytes=limit)
            return desired, Provenance(head, head_rev.sha, f"{repo or '.'}:{path.as_posix()}"), (base_state, base_rev)
        if repo or ref:
            desired, provenance, _ = load_ref(repo or ".", ref or "HEAD", path.as_posix(), cache_dir,
                                              max_file_bytes=limit)
            return desired, provenance, None
        desired, provenance = load_folder(path, max_file_bytes=limit)
        return desired, provenance, None
    except GitSourceError as exc:
        click.echo(f"error: {exc}", err=True)
        if output == "json":
            json.dump({"error": str(exc)}, sys.stdout)
            sys.stdout.write("\n")
        elif output == "markdown":
            render_findings.render_markdown([Finding(Severity.ERROR, Source(repo or str(path)), str(exc))],
                                            sys.stdout)
        sys.exit(EXIT_ERROR)


def _invalid(desired: DesiredState, outcome: Outcome, output: str) -> None:
    render_findings.render_text(desired, outcome.findings, sys.stderr)
    if output == "json":  # a CI job reading stdout still learns why there is no plan
        render_findings.render_json(desired, outcome.findings, sys.stdout)
    elif output == "markdown":
        render_findings.render_markdown(outcome.findings, sys.stdout)
    sys.exit(EXIT_ERROR)


def _print_plan(plan: Plan, output: str, color: bool) -> None:
    if output == "json":
        render_plan.render_json(plan, sys.stdout)
    elif output == "markdown":
        render_plan.render_markdown(plan, sys.stdout)
    else:
        render_plan.render_text(plan, sys.stdout, color=color)


def _confirm(yes: bool) -> Callable[[Plan], bool]:
    def confirm(plan: Plan) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            click.echo("refusing to apply without a terminal to confirm on; pass --yes to apply", err=True)
            return False
        if not click.confirm("Apply these changes?", default=False):
            click.echo("nothing applied", err=True)
            return False
        return True

    return confirm


def _progress_printer() -> Callable[[ActionResult, int, int], None]:
    """A progress bar on a terminal, one line per action otherwise (always on stderr)."""
    if sys.stderr.isatty():
        bar = click.progressbar(length=1, label="Applying", file=sys.stderr)
        state = {"started": False}

        def update(item: ActionResult, index: int, total: int) -> None:
            if not state["started"]:
                bar.length = total
                bar.__enter__()
                state["started"] = True
            bar.update(1, f"{item.action.ref}")
            if index == total:
                bar.__exit__(None, None, None)

        return update

    def line(item: ActionResult, index: int, total: int) -> None:
        click.echo(f"[{index}/{total}] {item.outcome}: {item.action.ref}: {item.action.verb.value}"
                   + (f" ({item.message})" if item.message else ""), err=True)

    return line


def _finish(outcome: Outcome, output: str, detailed_exitcode: bool, site_code: str) -> None:
    """Report an apply's outcome and exit with its code."""
    if outcome.stage is Stage.LEASE_HELD:
        click.echo(f"refusing to apply: {outcome.message}", err=True)
        sys.exit(EXIT_ERROR)
    if outcome.stage in (Stage.LEASE_LOST, Stage.REFUSED, Stage.SECRETS_MISSING):
        click.echo(f"{'refusing to apply' if outcome.stage is Stage.LEASE_LOST else 'error'}: {outcome.message}",
                   err=True)
        sys.exit(EXIT_ERROR)
    if outcome.stage is Stage.DECLINED:
        sys.exit(EXIT_ERROR)
    plan, result = outcome.plan, outcome.result
    assert plan is not None and result is not None
    if output == "json":
        document = plan_document(plan)
        document["result"] = [{"verb": r.action.verb.value, "kind": r.action.ref.kind, "name": r.action.ref.name,
                               "outcome": r.outcome, "message": r.message} for r in result.results]
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif output == "markdown":
        render_plan.render_markdown(plan, sys.stdout)
    applied, failed, skipped = (len(result.of(o)) for o in ("applied", "failed", "skipped"))
    click.echo(f"Apply complete: {applied} applied, {failed} failed, {skipped} skipped.", err=output != "text")
    for item in result.of("failed"):
        click.echo(f"  failed: {item.action.ref}: {item.action.verb.value}: {item.message}", err=True)
    if result.stopped:
        click.echo(f"stopped: the lease of site {site_code} was lost mid-apply (unlocked, or it lapsed); "
                   f"{len(plan.actions) - len(result.results)} action(s) were not run: plan again", err=True)
    sys.exit(EXIT_ERROR if failed or skipped or result.stopped else (EXIT_CHANGES if detailed_exitcode else EXIT_OK))


def _plan_only(path: Path, options: dict[str, Any], out: Path | None) -> None:
    """A dry run: plan, print, and (``--out``) save the plan for ``reconcile apply FILE``; never takes the lease."""
    output = options["output"]
    settings = settings_for(path, options["config_file"], options["secrets_dir"])
    target, reach = site_for(options["site_args"], settings)
    desired, provenance, pair = _load(path, options["repo"], options["ref"], options["base"], options["head"],
                                      settings, cache_folder(target), output)
    workspace = open_for(target, options["state_path"], options["new_state"], read_only=True, options=reach,
                         settings=settings)
    try:
        step = Pass(workspace.site, workspace.state, settings, _secrets_base(path))
        plan, stopped = step.plan(desired, _plan_options_of(options))
        if stopped is not None and stopped.stage is Stage.INVALID:
            _invalid(desired, stopped, output)
        if stopped is not None and stopped.stage is Stage.SECRETS_MISSING:
            click.echo(f"error: {stopped.message}", err=True)
            sys.exit(EXIT_ERROR)
        assert plan is not None
        color = use_color(options["no_color"])
        if pair is not None:
            base_state, base_rev = pair
            found = review({"ref": options["base"] or "", "sha": base_rev.sha},
                           {"ref": options["head"] or "", "sha": provenance.sha or ""}, base_state, desired, plan)
            if output == "json":
                render_review.render_json(found, sys.stdout)
            elif output == "markdown":
                render_review.render_markdown(found, sys.stdout)
            else:
                render_review.render_text_review(found, sys.stdout, color)
            if found.plan.blocked:
                sys.exit(EXIT_ERROR)
            changes = bool(found.plan.actions or found.manifest_changes)
            sys.exit(EXIT_CHANGES if options["detailed_exitcode"] and changes else EXIT_OK)
        _print_plan(plan, output, color)
        if plan.blocked:
            if out is not None:
                click.echo(f"the plan has blocked items: {out} was not written", err=True)
            sys.exit(EXIT_ERROR)
        if out is not None:
            write_saved_plan(saved_plan(plan, desired, provenance, workspace.site, workspace.site.location,
                                        path.as_posix(), options["repo"], _plan_options_of(options)), out)
            click.echo(f"saved plan {plan.plan_id} to {out}; apply exactly this plan with 'reconcile apply {out}'",
                       err=True)
        sys.exit(EXIT_CHANGES if options["detailed_exitcode"] and plan.actions else EXIT_OK)
    finally:
        workspace.close()


def _secrets_base(path: Path) -> Path:
    # A file secret's path is relative to the manifests folder named by PATH (in the working folder also when
    # the manifests come from Git, where secrets never are).
    return path.parent if path.is_file() else path


def _plan_options_of(options: dict[str, Any]) -> PlanOptions:
    return PlanOptions(adopt=options["adopt"], prune=options["prune"], targets=tuple(options["targets"]),
                       max_delete=options["max_delete"], refresh_secrets=options["refresh_secrets"])


@cli.command("plan")
@_plan_options
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also save the plan to this file; 'reconcile apply FILE' then applies exactly that plan.")
def plan_command(path: Path, out: Path | None, **options: Any) -> None:
    """Show what would change to make the site equal to the manifests under PATH (the same as --dry-run).

    Changes nothing and never takes the site's lease. With --out the plan is saved (with no secret values):
    'reconcile apply FILE' applies exactly that plan, or refuses when anything it touches moved since.
    """
    _plan_only(path, options, out)


@cli.command("apply")
@_plan_options
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing (the same as 'reconcile plan').")
@click.option("--wait-for-content", is_flag=True, help="Create a deployment only once its content is installed "
              "on a targeted distribution point.")
@click.option("--content-timeout", type=click.FloatRange(0), default=1800, show_default=True, metavar="SECONDS",
              help="How long --wait-for-content waits per deployment.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@click.option("--lease-seconds", type=click.FloatRange(1), default=DEFAULT_LEASE_SECONDS, show_default=True,
              help="The site's lease, taken before the site is read and renewed while this apply runs, lapses this "
                   "long after this process stops renewing it (if it dies).")
@actor_option
def apply_command(path: Path, dry_run: bool, wait_for_content: bool, content_timeout: float, yes: bool,
                  lease_seconds: float, actor: str | None, **options: Any) -> None:
    """Plan the changes that make the site equal to the manifests under PATH, then apply them.

    PATH may also be a plan saved with 'reconcile plan --out FILE': that exact plan is applied, after checking
    that the manifests and every object it touches are still as they were when it was made.

    The plan is printed first. Applying asks for confirmation on a terminal; without a terminal it
    needs --yes. A plan with blocked items applies nothing. Unless --dry-run, the site's lease is taken
    before the site is read and held until the apply ends: another apply or a controller refuses meanwhile.
    """
    if dry_run:
        _plan_only(path, options, None)
    apply = ApplyOptions(wait_for_content=content_timeout if wait_for_content else None,
                         progress=_progress_printer(), notice=lambda message: click.echo(message, err=True))
    if path.is_file() and path.suffix.lower() not in (".yaml", ".yml"):
        _apply_saved(read_saved_plan(path), options, apply, yes, lease_seconds, resolve_actor(actor), path)
    if options["base"] or options["head"]:
        raise click.UsageError("a pull request plan (--base, --head) is a dry run: use 'reconcile plan'")
    output = options["output"]
    settings = settings_for(path, options["config_file"], options["secrets_dir"])
    target, reach = site_for(options["site_args"], settings)
    refuse_read_only(reach, target, "'reconcile apply'")
    desired, provenance, _ = _load(path, options["repo"], options["ref"], None, None, settings, cache_folder(target),
                                   output)
    workspace = open_for(target, options["state_path"], options["new_state"], options=reach, settings=settings)
    keeper = LeaseKeeper(workspace.state, workspace.site.site_code, "apply", lease_seconds)
    try:
        step = Pass(workspace.site, workspace.state, settings, _secrets_base(path), keeper, actor=resolve_actor(actor),
                    provenance=provenance)
        plan, stopped = step.plan(desired, _plan_options_of(options))
        if stopped is not None:
            if stopped.stage is Stage.INVALID:
                _invalid(desired, stopped, output)
            if stopped.stage is Stage.BLOCKED:
                assert plan is not None
                _print_plan(plan, output, use_color(options["no_color"]))
                click.echo("the plan has blocked items: nothing was applied", err=True)
                sys.exit(EXIT_ERROR)
            _finish(stopped, output, options["detailed_exitcode"], workspace.site.site_code)
        assert plan is not None
        _show_and_apply(step, plan, provenance, apply, yes, options, workspace.site.site_code)
    finally:
        keeper.release()
        workspace.close()


def _show_and_apply(step: Pass, plan: Plan, provenance: Provenance, apply: ApplyOptions, yes: bool,
                    options: dict[str, Any], site_code: str) -> None:
    """Print the plan (in text before asking; in JSON and Markdown with the result), confirm, apply, exit."""
    output = options["output"]
    missing = step.preflight(plan) if plan.actions else None  # before anything is printed
    if missing is not None:
        _finish(missing, output, options["detailed_exitcode"], site_code)
    if not plan.actions or output == "text":
        _print_plan(plan, output, use_color(options["no_color"]))
    outcome = step.apply(plan, provenance, apply, _confirm(yes))
    if outcome.stage is Stage.IN_SYNC:
        sys.exit(EXIT_OK)
    _finish(outcome, output, options["detailed_exitcode"], site_code)


def _apply_saved(saved: SavedPlan, options: dict[str, Any], apply: ApplyOptions, yes: bool,
                 lease_seconds: float, actor: Actor, file: Path) -> None:
    """Apply exactly a saved plan: refused when its manifests or anything it touches moved since it was made."""
    inputs = saved.inputs
    output = options["output"]
    path = Path(inputs.path)
    settings = settings_for(path, options["config_file"], options["secrets_dir"])
    arguments = options["site_args"]
    if arguments.site is None and inputs.site_location:  # the site the plan was made against
        arguments = replace(arguments, site=inputs.site_location if is_url(inputs.site_location)
                            else Path(inputs.site_location))
    target, reach = site_for(arguments, settings)
    refuse_read_only(reach, target, "'reconcile apply' of a saved plan")
    desired, provenance, _ = _load(path, inputs.repo, inputs.ref if inputs.repo else None, None, None, settings,
                                   cache_folder(target), output)
    workspace = open_for(target, options["state_path"], options["new_state"], options=reach, settings=settings)
    keeper = LeaseKeeper(workspace.state, workspace.site.site_code, "apply", lease_seconds)
    try:
        step = Pass(workspace.site, workspace.state, settings, _secrets_base(path), keeper, actor=actor,
                    provenance=provenance, record={"saved_plan": {"file": str(file), "sha256": file_digest(file)}})
        plan = saved.plan
        held = step.take_lease()
        if held is not None:
            _finish(held, output, False, workspace.site.site_code)
        step.check_saved(saved, desired, provenance)
        _show_and_apply(step, plan, provenance, apply, yes, options, workspace.site.site_code)
    finally:
        keeper.release()
        workspace.close()
