"""The ``reconcile`` command: parse options, call the library, render, pick an exit code."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from reconciler.apply.executor import ActionResult, ApplyRefused, apply_plan, settle_pending
from reconciler.config import Config, ConfigError, load_config, manifests_root
from reconciler.controller.loop import Loop, LoopConfig, json_emitter, parse_duration, text_emitter
from reconciler.controller.metrics import Metrics
from reconciler.controller.metrics import serve as serve_metrics
from reconciler.controller.tick import Controller, ControllerConfig
from reconciler.convert import manifest_to_xml, read_xml_file, xml_to_manifest
from reconciler.effective import ComputerNotFound, effective_variables
from reconciler.errors import Finding, ReconcilerError, Severity, Source
from reconciler.export import export_site, export_zip, import_zip
from reconciler.lease import DEFAULT_LEASE_SECONDS, LeaseHeld, LeaseKeeper, UnlockRefused, held_by, unlock
from reconciler.models import KINDS
from reconciler.plan.actions import Plan
from reconciler.plan.planner import MAX_DELETE_PERCENT, UnknownTarget, make_plan, resolve_targets
from reconciler.render import check as render_check
from reconciler.render import findings as render_findings
from reconciler.render import plan as render_plan
from reconciler.render import review as render_review
from reconciler.render import site as render_site
from reconciler.render import status as render_status
from reconciler.render.effective import render as render_effective
from reconciler.render.history import render as render_history
from reconciler.render.plan import plan_document
from reconciler.review import review
from reconciler.secrets import HashKeyError
from reconciler.secrets import reader as secret_reader
from reconciler.site import Site, SiteError, backup_site, check_site, create_site
from reconciler.source import yamlfile
from reconciler.source.git import GitSourceError
from reconciler.source.loader import load
from reconciler.source.select import Provenance, load_folder, load_pair, load_ref
from reconciler.state import backup_state, check_state
from reconciler.storage import FileCheck
from reconciler.tracefile import internal_error_line
from reconciler.validate import has_errors, validate
from reconciler.workspace import DEFAULT_SITE, Workspace, open_site_alone, open_workspace, state_path_for

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
#: A bug in the tool (sysexits' EX_SOFTWARE): an exception it did not raise on purpose; the trace is in a file.
EXIT_INTERNAL = 70


def _color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def _settings_options(command: Callable[..., None]) -> Callable[..., None]:
    """--config and --secrets-dir: where the settings and the secrets of the manifests are, on this machine."""
    command = click.option("--secrets-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                           help="Folder of file secrets (default: secrets/ in the manifests folder, or "
                                "RECONCILE_SECRETS_DIR); a valueFrom file secrets/NAME is read as DIR/NAME.")(command)
    return click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Settings file (default: reconcile.yaml in the manifests folder, on local disk; never "
                             "read from Git).")(command)


def _settings(path: Path, config_file: Path | None, secrets_dir: Path | None) -> Config:
    """The settings of the manifests under PATH (the local folder of that path, also with --repo)."""
    try:
        return load_config(manifests_root(path), config_file, secrets_dir)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)


class _DefaultGroup(click.Group):
    """``reconcile [PATH] [OPTIONS]`` is the main job: anything that is not a sub-command runs ``apply``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help", "--version")):
            args = ["apply", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        """No traceback reaches a person: an error the tool raises on purpose (a damaged or lost state store, a
        site that refused, ...) is ``error: …`` and exit 1; any other exception is a bug, reported in one line
        naming the file that holds its trace, and exit 70."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # click's own: usage errors, --help, Ctrl-C
        except Exception as exc:
            ctx.exit(_report_error(exc))


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="configmgr-ts-reconciler", prog_name="reconcile")
def cli() -> None:
    """GitOps for Configuration Manager task sequences: manifests in Git, the site made to match.

    \b
    Common commands:
      reconcile --dry-run                    show what would change (manifests/ against the site)
      reconcile [PATH]                       show the plan, then apply it after confirmation
      reconcile validate manifests/          check manifests before anything touches a site
      reconcile site init --demo             create an embedded site with demo inventory
      reconcile site show                    print the live objects of the site
      reconcile unlock LEASE_ID              free the site's lease of a writer that died
      reconcile convert export.xml           turn task sequence XML into a manifest
      reconcile convert --to xml ts.yaml     turn a manifest into task sequence XML
      reconcile crds                         regenerate the JSON schemas and CRDs

    Without --site, the embedded site in .reconcile/site.db under the current folder is used
    (created with the demo inventory on first use). --log-level debug (anywhere on the command line)
    or RECONCILE_LOG_LEVEL=debug prints diagnostics on stderr; secrets are never logged.
    """


@cli.command("validate")
@click.argument("path", default="manifests", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-color", is_flag=True, help="No colours (also when NO_COLOR is set).")
@_settings_options
def validate_command(path: Path, output: str, no_color: bool, config_file: Path | None,
                     secrets_dir: Path | None) -> None:
    """Validate every *.yaml / *.yml under PATH (default: manifests/).

    Each document is checked against its kind, then the set: unique names, references, where secrets
    may come from (reconcile.yaml), and the rules ConfigMgr enforces that need no live site. Exit 0 when
    valid, 1 otherwise.
    """
    settings = _settings(path, config_file, secrets_dir)
    state = load(path, max_file_bytes=settings.limits.max_manifest_bytes)
    findings = validate(state, settings)
    if output == "json":
        render_findings.render_json(state, findings, sys.stdout)
    else:
        render_findings.render_text(state, findings, sys.stdout, color=_color(no_color))
    sys.exit(EXIT_ERROR if has_errors(findings) else EXIT_OK)


@cli.command("convert")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "target", type=click.Choice(["yaml", "xml"]), default=None,
              help="Output format; by default XML input becomes YAML and YAML input becomes XML.")
@click.option("--name", default=None, help="metadata.name for the manifest (default: from the console name).")
def convert_command(file: Path, target: str | None, name: str | None) -> None:
    """Convert task sequence XML (a <sequence> file or a console object.xml) to a manifest, or back.

    Secrets in the XML (passwords, product keys, PINs, hidden values) are never written: they become
    valueFrom references, listed on stderr so they can be provided at apply time.
    """
    is_yaml = file.suffix.lower() in (".yaml", ".yml")
    target = target or ("xml" if is_yaml else "yaml")
    try:
        if target == "yaml":
            converted = xml_to_manifest(read_xml_file(file), where=str(file), name=name, default_name=file.stem)
            sys.stdout.write(f"# Converted from {file.name}\n")
            sys.stdout.write(yamlfile.dump(converted.manifest))
            for secret in converted.secrets:
                click.echo(f"{file}: secret {secret.property!r} of step {secret.where!r} was not converted; "
                           f"provide it at apply time in ${secret.env}", err=True)
            return
        state = load(file)
        findings = validate(state)
        if has_errors(findings):
            render_findings.render_text(state, findings, sys.stderr)
            sys.exit(EXIT_ERROR)
        sequences = state.of_kind("TaskSequence")
        if name:
            sequences = [o for o in sequences if o.name == name]
        if len(sequences) != 1:
            raise click.UsageError(f"{file} holds {len(sequences)} TaskSequence documents; pick one with --name")
        sys.stdout.write(manifest_to_xml(sequences[0].manifest) + "\n")  # type: ignore[arg-type]
    except ReconcilerError as exc:
        _echo_errors(exc, file)
        sys.exit(EXIT_ERROR)


def _echo_errors(exc: ReconcilerError, file: Path | None = None) -> None:
    """``error: …``, one line per problem, each naming the file (or archive entry) it is about."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        named = file is None or line.startswith(str(file))
        click.echo(f"error: {line}" if named else f"error: {file}: {line}", err=True)


@cli.command("crds")
@click.option("--out", "out_dir", default="crds", type=click.Path(file_okay=False, path_type=Path),
              show_default=True)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the files on disk are stale.")
def crds_command(out_dir: Path, check: bool) -> None:
    """Write JSON Schemas and Kubernetes CRDs of the manifest kinds, generated from the models."""
    from reconciler.crds import write_crds

    paths = write_crds(out_dir, check=check)
    if check:
        for path in paths:
            click.echo(f"{path}: stale; run 'reconcile crds' and commit the result", err=True)
        sys.exit(EXIT_ERROR if paths else EXIT_OK)
    for path in paths:
        click.echo(f"wrote {path}")
    if not paths:
        click.echo(f"{out_dir}: up to date")


def _open(site: Path | None, state: Path | None, new_state: bool = False, read_only: bool = False) -> Workspace:
    """The site and its state store (``read_only``: this command never writes to the site).

    A site or state store that cannot be opened raises its typed error, which the top of the CLI prints
    as one ``error:`` line (exit 1; never a usage error, whose exit code 2 means "changes" to a CI job).
    """
    workspace = open_workspace(site, state, new_state=new_state, read_only=read_only)
    if workspace.created:
        _created(workspace.site)
    return workspace


def _open_site(site_path: Path | None, read_only: bool = True) -> Site:
    """The site alone, for commands that never read the state store: they must not create an empty one."""
    site, created = open_site_alone(site_path, read_only=read_only)
    if created:
        _created(site)
    return site


def _created(site: Site) -> None:
    click.echo(f"created the embedded site {site.location} (site {site.site_code}) with the demo inventory; use "
               "--site to choose another", err=True)


_new_state_option = click.option(
    "--new-state", is_flag=True,
    help="Start a new, empty state store when it is missing although the site holds objects this tool may manage "
         "(they must then be taken over again with --adopt or 'reconcile export'). Without it that is an error.")


@cli.command("apply")
@click.argument("path", default="manifests", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Embedded site database (default .reconcile/site.db, created with demo inventory).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="State store (default: beside the site).")
@click.option("--target", "targets", multiple=True, metavar="KIND/NAME", help="Only these objects (repeatable).")
@click.option("--prune", is_flag=True, help="Delete managed objects that no manifest describes any more.")
@click.option("--adopt", is_flag=True, help="Take over unmanaged live objects with the same console name.")
@click.option("--max-delete", type=click.FloatRange(0, 100), default=MAX_DELETE_PERCENT, show_default=True,
              metavar="PERCENT", help="Block a plan that deletes more than this share of the managed objects.")
@click.option("--wait-for-content", is_flag=True, help="Create a deployment only once its content is installed "
              "on a targeted distribution point.")
@click.option("--content-timeout", type=click.FloatRange(0), default=1800, show_default=True, metavar="SECONDS",
              help="How long --wait-for-content waits per deployment.")
@click.option("--refresh-secrets", is_flag=True,
              help="Also read every secret the managed objects use and compare it with the hash stored at the last "
                   "apply, so a rotated password behind an unchanged valueFrom is updated. Without it a plan never "
                   "reads a secret.")
@click.option("--output", "-o", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 2 with changes, 1 on error.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@click.option("--lease-seconds", type=click.FloatRange(1), default=DEFAULT_LEASE_SECONDS, show_default=True,
              help="The site's lease, taken before the site is read and renewed while this apply runs, lapses this "
                   "long after this process stops renewing it (if it dies).")
@click.option("--repo", default=None, metavar="PATH_OR_URL",
              help="Read PATH from this Git repository instead of the file system (no checkout).")
@click.option("--ref", default=None, help="Branch, tag or commit to read with --repo (default HEAD).")
@click.option("--base", default=None, help="Pull request plan: the target branch (with --head and --dry-run).")
@click.option("--head", default=None, help="Pull request plan: the branch to merge.")
@click.option("--no-color", is_flag=True, help="No colours (also when NO_COLOR is set).")
@_new_state_option
@_settings_options
def apply_command(path: Path, dry_run: bool, site_path: Path | None, state_path: Path | None,
                  targets: tuple[str, ...], prune: bool, adopt: bool, max_delete: float, wait_for_content: bool,
                  content_timeout: float, refresh_secrets: bool, output: str, detailed_exitcode: bool, yes: bool,
                  lease_seconds: float, repo: str | None,
                  ref: str | None, base: str | None, head: str | None, no_color: bool, new_state: bool,
                  config_file: Path | None, secrets_dir: Path | None) -> None:
    """Plan the changes that make the site equal to the manifests under PATH, then apply them.

    The plan is printed first. Applying asks for confirmation on a terminal; without a terminal it
    needs --yes. A plan with blocked items applies nothing. Unless --dry-run, the site's lease is taken
    before the site is read and held until the apply ends: another apply or a controller refuses meanwhile.
    """
    cache_dir = (site_path.parent if site_path else DEFAULT_SITE.parent)
    settings = _settings(path, config_file, secrets_dir)
    limit = settings.limits.max_manifest_bytes
    base_state = base_rev = None
    try:
        if base or head:
            if not (base and head and dry_run):
                raise click.UsageError("a pull request plan needs --base, --head and --dry-run")
            base_state, base_rev, desired, head_rev = load_pair(repo or ".", base, head, path.as_posix(), cache_dir,
                                                                    max_file_bytes=limit)
            provenance = Provenance(head, head_rev.sha, f"{repo or '.'}:{path.as_posix()}")
        elif repo or ref:
            desired, provenance, _ = load_ref(repo or ".", ref or "HEAD", path.as_posix(), cache_dir,
                                                   max_file_bytes=limit)
        else:
            desired, provenance = load_folder(path, max_file_bytes=limit)
    except GitSourceError as exc:
        click.echo(f"error: {exc}", err=True)
        if output == "json":
            json.dump({"error": str(exc)}, sys.stdout)
            sys.stdout.write("\n")
        elif output == "markdown":
            render_findings.render_markdown([Finding(Severity.ERROR, Source(repo or str(path)), str(exc))],
                                            sys.stdout)
        sys.exit(EXIT_ERROR)
    findings = validate(desired, settings)
    if has_errors(findings):
        errors = [f for f in findings if f.severity is Severity.ERROR]
        render_findings.render_text(desired, errors, sys.stderr)
        if output == "json":  # a CI job reading stdout still learns why there is no plan
            render_findings.render_json(desired, errors, sys.stdout)
        elif output == "markdown":
            render_findings.render_markdown(errors, sys.stdout)
        sys.exit(EXIT_ERROR)
    workspace = _open(site_path, state_path, new_state)
    keeper, lease_id = None, ""
    try:
        if not dry_run:  # a plan that will be applied is made under the lease, so no other writer moves the site
            keeper = LeaseKeeper(workspace.state, workspace.site.site_code, "apply", lease_seconds)
            try:
                lease_id = keeper.take().lease_id
            except LeaseHeld as exc:
                click.echo(f"refusing to apply: {exc}", err=True)
                sys.exit(EXIT_ERROR)
        try:
            targets = resolve_targets(targets, desired, workspace.state)
        except UnknownTarget as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        # A file secret's path is relative to the manifests folder named by PATH (in the working folder
        # also when the manifests come from Git, where secrets never are).
        secrets_base = path.parent if path.is_file() else path
        try:
            refresh = secret_reader(secrets_base, settings.secrets, with_key=True) if refresh_secrets else None
        except HashKeyError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        plan = make_plan(desired, workspace.site.read(), workspace.state, adopt=adopt, prune=prune,
                         targets=targets, max_delete=max_delete, secrets=refresh)
        color = _color(no_color)
        if base_state is not None and base_rev is not None:
            result_review = review({"ref": base or "", "sha": base_rev.sha}, {"ref": head or "", "sha": provenance.sha
                                   or ""}, base_state, desired, plan)
            if output == "json":
                render_review.render_json(result_review, sys.stdout)
            elif output == "markdown":
                render_review.render_markdown(result_review, sys.stdout)
            else:
                render_review.render_text_review(result_review, sys.stdout, color)
            if result_review.plan.blocked:
                sys.exit(EXIT_ERROR)
            changes = bool(result_review.plan.actions or result_review.manifest_changes)
            sys.exit(EXIT_CHANGES if detailed_exitcode and changes else EXIT_OK)
        if dry_run or not plan.actions or plan.blocked:
            _print_plan(plan, output, color)
            if plan.blocked:
                if not dry_run:
                    click.echo("the plan has blocked items: nothing was applied", err=True)
                sys.exit(EXIT_ERROR)
            if not dry_run:
                settle_pending(plan, workspace.state)  # nothing to apply also finishes an interrupted run
            sys.exit(EXIT_CHANGES if detailed_exitcode and plan.actions else EXIT_OK)
        if output == "text":
            _print_plan(plan, output, color)
        if not yes:
            if not sys.stdin.isatty():
                click.echo("refusing to apply without a terminal to confirm on; pass --yes to apply", err=True)
                sys.exit(EXIT_ERROR)
            if not click.confirm("Apply these changes?", default=False):
                click.echo("nothing applied", err=True)
                sys.exit(EXIT_ERROR)
        assert keeper is not None
        if not keeper.check(lease_id):
            click.echo(f"refusing to apply: the lease of site {workspace.site.site_code} was lost while this plan "
                       f"waited (unlocked, or it lapsed); it is now held by "
                       f"{held_by(workspace.state.lease_holder(workspace.site.site_code))}; nothing was applied: "
                       "plan again", err=True)
            sys.exit(EXIT_ERROR)
        try:
            result = apply_plan(plan, workspace.site, workspace.state, secrets_base=secrets_base,
                                policy=settings.secrets,
                                progress=_progress_printer(),
                                wait_for_content=content_timeout if wait_for_content else None,
                                notice=lambda message: click.echo(message, err=True),
                                should_stop=lambda: not keeper.check(lease_id))
        except ApplyRefused as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        if output == "json":
            document = plan_document(plan)
            document["result"] = [{"verb": r.action.verb.value, "kind": r.action.ref.kind, "name": r.action.ref.name,
                                   "outcome": r.outcome, "message": r.message} for r in result.results]
            json.dump(document, sys.stdout, indent=2)
            sys.stdout.write("\n")
        elif output == "markdown":
            render_plan.render_markdown(plan, sys.stdout)
        applied, failed, skipped = (len(result.of(o)) for o in ("applied", "failed", "skipped"))
        workspace.state.record_apply(plan.plan_id, provenance.to_json(), plan.counts(),
                                     {"applied": applied, "failed": failed, "skipped": skipped})
        click.echo(f"Apply complete: {applied} applied, {failed} failed, {skipped} skipped.",
                   err=output != "text")
        for item in result.of("failed"):
            click.echo(f"  failed: {item.action.ref}: {item.action.verb.value}: {item.message}", err=True)
        if result.stopped:
            click.echo(f"stopped: the lease of site {workspace.site.site_code} was lost mid-apply (unlocked, or it "
                       f"lapsed); {len(plan.actions) - len(result.results)} action(s) were not run: plan again",
                       err=True)
        sys.exit(EXIT_ERROR if failed or skipped or result.stopped
                 else (EXIT_CHANGES if detailed_exitcode else EXIT_OK))
    finally:
        if keeper is not None:
            keeper.release()
        workspace.close()


def _print_plan(plan: Plan, output: str, color: bool) -> None:
    if output == "json":
        render_plan.render_json(plan, sys.stdout)
    elif output == "markdown":
        render_plan.render_markdown(plan, sys.stdout)
    else:
        render_plan.render_text(plan, sys.stdout, color=color)


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


@cli.group("site")
def site_group() -> None:
    """The embedded site: create it, look at it, check it, back it up."""


@site_group.command("init")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_SITE,
              show_default=True)
@click.option("--site-code", default="PS1", show_default=True, help="Three letters or digits.")
@click.option("--demo", is_flag=True, help="Add the inventory the example manifests reference.")
def site_init(site_path: Path, site_code: str, demo: bool) -> None:
    """Create an embedded site (a SQLite file that behaves like a ConfigMgr primary site)."""
    if site_path.exists():
        raise click.UsageError(f"{site_path} already exists")
    site = create_site(site_path, site_code=site_code, demo=demo)
    try:
        click.echo(f"created site {site.site_code} in {site_path}" + (" with the demo inventory" if demo else ""))
    finally:
        site.close()


@site_group.command("show")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def site_show(site_path: Path | None, output: str) -> None:
    """Print the live objects of the site (masked variable values are never shown)."""
    site = _open_site(site_path)
    try:
        render_site.render(site.read(), sys.stdout, output)
    finally:
        site.close()


@cli.group("vars")
def vars_group() -> None:
    """Task sequence variables as the site resolves them."""


@cli.command("controller")
@click.option("--repo", required=True, metavar="PATH_OR_URL", help="Git repository to follow.")
@click.option("--ref", default="main", show_default=True, help="Branch (or tag, commit) to keep the site equal to.")
@click.option("--path", "manifests_path", default="manifests", show_default=True, help="Folder inside the repository.")
@click.option("--interval", default="5m", show_default=True, help="Time between ticks: 30s, 5m, 1h.")
@click.option("--self-heal/--no-self-heal", default=True, show_default=True,
              help="Apply changes (and revert drift), or only report them.")
@click.option("--prune", is_flag=True, help="Delete managed objects that no manifest describes any more.")
@click.option("--max-delete", type=click.FloatRange(0, 100), default=MAX_DELETE_PERCENT, show_default=True)
@click.option("--watch", is_flag=True, help="Also tick when files change in the working copy of --repo.")
@click.option("--refresh-secrets", is_flag=True,
              help="Every interval tick also reads the secrets the managed objects use and writes rotated ones.")
@click.option("--commit-poll", default="2s", show_default=True,
              help="How often to look for a new commit on the ref (0 turns it off: interval and --watch only).")
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Serve /healthz, /readyz, /status and /metrics (Prometheus), for example 127.0.0.1:9180.")
@click.option("--lease-seconds", type=click.FloatRange(1), default=30, show_default=True,
              help="How long the writer's lease lasts without renewal; a standby takes over after it expires.")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@_new_state_option
@_settings_options
def controller_command(repo: str, ref: str, manifests_path: str, interval: str, self_heal: bool, prune: bool,
                       max_delete: float, watch: bool, refresh_secrets: bool, commit_poll: str, listen: str | None,
                       lease_seconds: float,
                       site_path: Path | None, state_path: Path | None, log_format: str, once: bool,
                       new_state: bool, config_file: Path | None, secrets_dir: Path | None) -> None:
    """Keep the site equal to a Git branch: tick on an interval, on new commits and (--watch) on file changes.

    Settings (reconcile.yaml) and secrets are read from the local folder named by --path, never from Git.
    """
    try:
        seconds = parse_duration(interval)
        poll = parse_duration(commit_poll)
    except ValueError:
        raise click.BadParameter("use seconds or 30s, 5m, 1h", param_hint="--interval/--commit-poll") from None
    settings = _settings(Path(manifests_path), config_file, secrets_dir)
    workspace = _open(site_path, state_path, new_state)
    cache_dir = site_path.parent if site_path else DEFAULT_SITE.parent
    config = ControllerConfig(repo=repo, ref=ref, path=manifests_path, self_heal=self_heal, prune=prune,
                              max_delete=max_delete, lease_seconds=lease_seconds,
                              secrets_base=Path(manifests_path), cache_dir=cache_dir, refresh_secrets=refresh_secrets,
                              settings=settings)
    controller = Controller(config, workspace.site, workspace.state)
    metrics = Metrics()
    server = None
    if listen:
        host, _, port = listen.rpartition(":")
        server = serve_metrics(metrics, host or "127.0.0.1", int(port))
    emit = json_emitter(sys.stdout) if log_format == "json" else text_emitter(sys.stdout)
    loop = Loop(controller, LoopConfig(interval=seconds, poll=min(poll, seconds), watch=Path(repo) if watch else None,
                                       once=once), metrics, emit)
    loop.install_signals()
    try:
        code = loop.run()
    finally:
        if server is not None:
            server.shutdown()
        controller.close()
        workspace.close()
    sys.exit(code)


@cli.command("status")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status_command(site_path: Path | None, state_path: Path | None, output: str) -> None:
    """Per object: synced, out of sync, drifted, failed or blocked; the last tick and the last applied commit."""
    workspace = _open(site_path, state_path, read_only=True)
    try:
        document = {"tick": workspace.state.get_status("tick"), "checked": workspace.state.get_status("checked"),
                    "objects": workspace.state.get_status("objects") or {},
                    "lease": None}
        lease = workspace.state.lease_holder(workspace.site.site_code)
        if lease is not None:
            document["lease"] = {**lease.to_json(), "describe": lease.describe()}
        applies = workspace.state.applies(1)
        document["last_applied"] = applies[0].detail.get("provenance") if applies else None
    finally:
        workspace.close()
    if output == "json":
        render_status.render_json(document, sys.stdout)
    else:
        render_status.render_text(document, sys.stdout)


@cli.command("unlock")
@click.argument("lease_id")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--yes", "-y", is_flag=True, help="Release without asking.")
def unlock_command(lease_id: str, site_path: Path | None, state_path: Path | None, yes: bool) -> None:
    """Release the site's lease LEASE_ID, held by a writer that died (as terraform's force-unlock).

    The ID is in every "being reconciled by" message and in 'reconcile status'. Only release a lease
    whose holder is dead: a live holder would go on writing beside the next writer.
    """
    workspace = _open(site_path, state_path, read_only=True)
    try:
        site = workspace.site.site_code
        try:
            lease = unlock(workspace.state, site, lease_id, _confirm_unlock(yes))
        except UnlockRefused as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        click.echo(f"released lease {lease.lease_id} of site {site}; the next apply or controller can take it")
    finally:
        workspace.close()


def _confirm_unlock(yes: bool) -> Callable[[str], bool]:
    def confirm(description: str) -> bool:
        click.echo(description)
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UnlockRefused("refusing to unlock without a terminal to confirm on; pass --yes to unlock")
        return click.confirm("Release it? Do this only if that process is dead", default=False)

    return confirm


@cli.command("export")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write one manifest per object here (folders mirror console folders).")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Instead, write a console-compatible export ZIP of one task sequence (--name).")
@click.option("--name", "console_name", default=None, help="Console name of the task sequence for --zip.")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--kind", "kinds", multiple=True, type=click.Choice(list(KINDS)), help="Only these kinds.")
@click.option("--name-filter", default=None, metavar="GLOB", help="Only objects whose console name matches.")
def export_command(out_dir: Path | None, zip_path: Path | None, console_name: str | None, site_path: Path | None,
                   state_path: Path | None, kinds: tuple[str, ...], name_filter: str | None) -> None:
    """Export the site to manifests (and adopt what was exported), or one task sequence to a console ZIP."""
    if (out_dir is None) == (zip_path is None):
        raise click.UsageError("give either --out DIR or --zip FILE.zip --name NAME")
    if zip_path is not None:
        if not console_name:
            raise click.UsageError("--zip needs --name (the task sequence's console name)")
        site = _open_site(site_path)  # a ZIP needs no state store: none is created
        try:
            export_zip(site.read(), zip_path, console_name)
        finally:
            site.close()
        click.echo(f"wrote {zip_path} (no passwords, as the console exports)")
        return
    # Exporting adopts what it writes: it is how a site is taken over, also after the state store was lost.
    workspace = _open(site_path, state_path, new_state=True, read_only=True)  # adopting writes the store only
    try:
        assert out_dir is not None
        result = export_site(workspace.site.read(), workspace.state, out_dir, set(kinds) or None, name_filter)
    except ReconcilerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        workspace.close()
    click.echo(f"wrote {len(result.files)} manifest(s) to {out_dir}; {result.adopted} object(s) are now managed")
    if result.skipped:
        click.echo(f"{len(result.skipped)} object(s) are already managed from other manifests and were not exported")
    if result.secrets:
        click.echo("Secrets were not exported; provide them at apply time:")
        for obj, env in result.secrets:
            click.echo(f"  ${env}  ({obj})")


@cli.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("manifests"),
              show_default=True)
@click.option("--on-conflict", type=click.Choice(["ignore", "overwrite", "new"]), default="ignore",
              show_default=True, help="A manifest of the same name exists: keep it, replace it, or write a copy.")
def import_command(archive: Path, out_dir: Path, on_conflict: str) -> None:
    """Import a ConfigMgr console export ZIP (Export Task Sequence wizard) as manifests."""
    try:
        result = import_zip(archive, out_dir, on_conflict)
    except ReconcilerError as exc:
        _echo_errors(exc, archive)
        sys.exit(EXIT_ERROR)
    for path in result.written:
        click.echo(f"wrote {path}")
    for kept in result.kept:
        click.echo(f"kept the existing {kept} (--on-conflict ignore)")
    if result.packages:
        click.echo("Content the site must have (by console name): "
                   + ", ".join(f"{p.name} ({p.package_id})" for p in result.packages))
    if result.content_folder:
        click.echo(f"content files: {result.content_folder}")
    for obj, env in result.secrets:
        click.echo(f"secret not imported: provide ${env} ({obj})")


@cli.command("history")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
def history_command(site_path: Path | None, state_path: Path | None, output: str, limit: int) -> None:
    """List applies, newest first: time, ref, commit, counts and outcome."""
    workspace = _open(site_path, state_path, read_only=True)
    try:
        entries = workspace.state.applies(limit)
    finally:
        workspace.close()
    render_history(entries, sys.stdout, output)


@vars_group.command("effective")
@click.option("--computer", required=True, help="Device name (or a ResourceID).")
@click.argument("path", default="manifests", type=click.Path(path_type=Path))
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_settings_options
def vars_effective(computer: str, path: Path, site_path: Path | None, output: str, config_file: Path | None,
                   secrets_dir: Path | None) -> None:
    """Each variable COMPUTER gets, its value (masked when hidden), where it comes from and what it overrides.

    Computer variables beat collection variables; between collections, priority 1 beats 9.
    """
    settings = _settings(path, config_file, secrets_dir)
    desired = load(path, max_file_bytes=settings.limits.max_manifest_bytes)
    findings = validate(desired, settings)
    if has_errors(findings):
        render_findings.render_text(desired, [f for f in findings if f.severity.value == "error"], sys.stderr)
        sys.exit(EXIT_ERROR)
    site = _open_site(site_path)
    try:
        target = int(computer) if computer.isdigit() else computer
        try:
            device, variables = effective_variables(target, desired, site.read())
        except ComputerNotFound as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        render_effective(device, variables, sys.stdout, output)
    finally:
        site.close()


@site_group.command("settings")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--default-size", type=click.IntRange(0), default=None,
              help="High-risk deployments to larger collections need acknowledgement (0: off).")
@click.option("--maximum-size", type=click.IntRange(0), default=None,
              help="High-risk deployments to larger collections are refused (0: off).")
@click.option("--site-systems", type=click.Choice(["block", "warn"]), default=None,
              help="Collections containing site system servers: refuse, or require acknowledgement.")
def site_settings(site_path: Path | None, default_size: int | None, maximum_size: int | None,
                  site_systems: str | None) -> None:
    """Show or set the site's deployment verification settings (high-risk deployments)."""
    site = _open_site(site_path, read_only=default_size is None and maximum_size is None and site_systems is None)
    try:
        if default_size is None and maximum_size is None and site_systems is None:
            settings = site.verification_settings()
        else:
            try:
                settings = site.set_verification_settings(default_size, maximum_size, site_systems)
            except SiteError as exc:
                raise click.BadParameter(str(exc)) from None
        click.echo(f"default size:  {settings.default_size or 'off'}")
        click.echo(f"maximum size:  {settings.maximum_size or 'off'}")
        click.echo(f"collections with site system servers: {settings.site_systems}")
    finally:
        site.close()


def _state_file(site_path: Path | None, state_path: Path | None) -> Path:
    return state_path or state_path_for(site_path or DEFAULT_SITE)


def _report(what: str, check: FileCheck, advice: str, output: str) -> None:
    if output == "json":
        render_check.render_json(check, sys.stdout)
    else:
        render_check.render_text(what, check, advice, sys.stdout)
    sys.exit(EXIT_OK if check.ok else EXIT_ERROR)


@cli.group("state")
def state_group() -> None:
    """The state store: what this tool owns, its history and secret hashes. Check it, back it up."""


@state_group.command("check")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The state store is the one beside this site (default .reconcile/site.db).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def state_check(site_path: Path | None, state_path: Path | None, output: str) -> None:
    """Check the state store's integrity (read-only): schema version, owned objects, journal, unfinished actions.

    Exit 0 when intact, 1 when damaged, missing or empty.
    """
    path = _state_file(site_path, state_path)
    _report("state store", check_state(path), "Restore it from a backup ('reconcile state backup FILE' makes one), "
            "or pass --new-state to a plan to start over (objects must then be taken over again)", output)


@state_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def state_backup(file: Path, site_path: Path | None, state_path: Path | None, force: bool) -> None:
    """Copy the state store to FILE: a consistent snapshot, safe while a controller writes (SQLite's backup API)."""
    path = _state_file(site_path, state_path)
    backup_state(path, file, force)
    click.echo(f"backed up {path} to {file}")


@site_group.command("check")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_SITE,
              show_default=True)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
def site_check(site_path: Path, output: str) -> None:
    """Check the embedded site's integrity (read-only). Exit 0 when intact, 1 when damaged or missing."""
    _report("embedded site", check_site(site_path), "Restore it from a backup ('reconcile site backup FILE' makes "
            "one)", output)


@site_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_SITE,
              show_default=True)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def site_backup(file: Path, site_path: Path, force: bool) -> None:
    """Copy the embedded site to FILE: a consistent snapshot, safe while it is written to."""
    backup_site(site_path, file, force)
    click.echo(f"backed up {site_path} to {file}")


def _report_error(exc: Exception) -> int:
    """Print an error that reached the top as one line (a bug: one line and the file with its trace); the exit code."""
    if isinstance(exc, ReconcilerError):
        click.echo(f"error: {exc}", err=True)
        return EXIT_ERROR
    logging.getLogger("reconciler").debug("internal error", exc_info=exc)
    click.echo(internal_error_line(exc), err=True)
    return EXIT_INTERNAL


def main() -> None:
    """Entry point. Diagnostics go to stderr; RECONCILE_LOG_LEVEL (or --log-level) sets their detail."""
    try:
        level = os.environ.get("RECONCILE_LOG_LEVEL", "WARNING").upper()
        if "--log-level" in sys.argv:
            at = sys.argv.index("--log-level")
            if at + 1 < len(sys.argv):
                level = sys.argv[at + 1].upper()
                del sys.argv[at:at + 2]
        logging.basicConfig(level=getattr(logging, level, logging.WARNING), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        cli()
    except Exception as exc:  # outside a command (the group's invoke reports those): still one line
        sys.exit(_report_error(exc))


if __name__ == "__main__":
    main()
