"""Commands about the site and the state store: site, state, status, history, unlock, vars."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import cli
from reconciler.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    SiteParam,
    StateParam,
    cache_folder,
    config_option,
    open_for,
    open_site_for,
    settings_for,
    settings_near,
    settings_options,
    site_for,
    site_options,
)
from reconciler.effective import ComputerNotFound, effective_variables
from reconciler.lease import UnlockRefused, unlock
from reconciler.plan.scope import scope_summary
from reconciler.render import check as render_check
from reconciler.render import findings as render_findings
from reconciler.render import site as render_site
from reconciler.render import sitereport as render_report
from reconciler.render import status as render_status
from reconciler.render.effective import render as render_effective
from reconciler.render.history import render as render_history
from reconciler.site import SiteError, backup_site, check_site, create_site
from reconciler.site.options import SiteArguments
from reconciler.site.report import check_remote, embedded_report
from reconciler.source.loader import load
from reconciler.state import backup_state, check_state
from reconciler.state.target import ENV_STATE_PASSWORD
from reconciler.status import freshness, live_objects, load_source, status_source
from reconciler.status import summary as status_summary
from reconciler.storage import FileCheck
from reconciler.validate import has_errors, validate
from reconciler.workspace import DEFAULT_SITE, default_site, state_path_for


@cli.group("site")
def site_group() -> None:
    """The embedded site: create it, look at it, check it, back it up."""


@site_group.command("init")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_SITE,
              show_default=True, help="Where to create the site file (its state store goes beside it).")
@click.option("--site-code", default="PS1", show_default=True, help="Three letters or digits.")
@click.option("--demo", is_flag=True, help="Add the inventory the example manifests reference.")
def site_init(site_path: Path, site_code: str, demo: bool) -> None:
    """Create an embedded site (a SQLite file that behaves like a ConfigMgr primary site)."""
    if site_path.exists():
        state = state_path_for(site_path)
        click.echo(f"error: {site_path} already exists; to replace it, keep a copy if it matters ('reconcile site "
                   f"backup FILE --site {site_path}', 'reconcile state backup FILE --site {site_path}'), then delete "
                   f"{site_path} and its state store {state} and run this again; or create another with --site PATH",
                   err=True)
        sys.exit(EXIT_ERROR)
    site = create_site(site_path, site_code=site_code, demo=demo)
    try:
        click.echo(f"created site {site.site_code} in {site_path}" + (" with the demo inventory" if demo else ""))
    finally:
        site.close()


@site_group.command("show")
@site_options
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
@config_option
def site_show(site_path: Path | str | None, site_args: SiteArguments, output: str, config_file: Path | None) -> None:
    """Print the live objects of the site (masked variable values are never shown)."""
    settings = settings_near(config_file)
    target, reach = site_for(site_args, settings)
    site = open_site_for(target, options=reach)
    try:
        render_site.render(site.read(), sys.stdout, output)
    finally:
        site.close()


@cli.group("vars")
def vars_group() -> None:
    """Task sequence variables as the site resolves them."""


@cli.command("status")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--live", is_flag=True,
              help="Plan against the site now (read-only, no lease) even when a controller checked it recently.")
@click.option("--repo", default=None, metavar="PATH_OR_URL", help="Plan with PATH read from this Git repository.")
@click.option("--ref", default=None, help="Branch, tag or commit to read with --repo (default HEAD).")
@site_options
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
@settings_options
def status_command(path: Path | None, live: bool, repo: str | None, ref: str | None, site_path: Path | str | None,
                   site_args: SiteArguments, state_path: Path | None, output: str, config_file: Path | None,
                   secrets_dir: Path | None) -> None:
    """Per object: synced, out of sync, drifted, failed or blocked; the last tick, the last apply, a pause.

    While a controller checked the site recently (within twice its interval, 10 minutes when unknown, and no
    apply since), its view is shown with its age. Otherwise, or with --live, status plans against the site now,
    read-only and without the lease, with the manifests named (PATH, --repo/--ref), else the branch the
    controller follows, else the folder or branch of the last apply, else manifests/.
    """
    settings = settings_for(path or Path("manifests"), config_file, secrets_dir)
    target, reach = site_for(site_args, settings)
    workspace = open_for(target, state_path, read_only=True, options=reach, settings=settings)
    try:
        state, site = workspace.state, workspace.site
        fresh = freshness(state)
        document: dict[str, Any] = {
            "tick": state.get_status("tick"), "checked": state.get_status("checked"),
            "objects": state.get_status("objects") or {}, "lease": None, "mode": "cached",
            "cached_age_seconds": round(fresh.age, 1) if fresh.age is not None else None,
            "why": fresh.reason, "source": None, "commit": None, "error": None}
        lease = state.lease_holder(site.site_code)
        if lease is not None:
            document["lease"] = {**lease.to_json(), "describe": lease.describe()}
        applies = state.applies(1)
        document["last_applied"] = applies[0].detail.get("provenance") if applies else None
        document["last_apply"] = ({"apply_id": applies[0].apply_id, "at": applies[0].at,
                                   "who": applies[0].detail.get("who"), "outcome": applies[0].outcome}
                                  if applies else None)
        pause = state.paused(site.site_code)
        document["paused"] = pause.to_json() if pause is not None else None
        if live or not fresh.fresh or path is not None or repo or ref:
            source = status_source(state, path, repo, ref)
            document["mode"] = "live"
            if source is None:
                document["objects"], document["error"] = {}, ("no manifests to plan with: name them (PATH, or --repo "
                                                              "and --ref); nothing was applied from here yet")
            else:
                desired, sha = load_source(source, settings, cache_folder(target))
                document.update(live_objects(site, state, settings, desired))
                document["source"], document["commit"] = {**source.to_json(), "describe": source.describe()}, sha
        document["summary"] = status_summary(document["objects"])
    finally:
        workspace.close()
    if output == "json":
        render_status.render_json(document, sys.stdout)
    else:
        render_status.render_text(document, sys.stdout)


@cli.command("unlock")
@click.argument("lease_id")
@site_options
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@click.option("--yes", "-y", is_flag=True, help="Release without asking.")
@config_option
def unlock_command(lease_id: str, site_path: Path | str | None, site_args: SiteArguments, state_path: Path | None,
                   yes: bool, config_file: Path | None) -> None:
    """Release the site's lease LEASE_ID, held by a writer that died (as terraform's force-unlock).

    The ID is in every "being reconciled by" message and in 'reconcile status'. Only release a lease
    whose holder is dead: a live holder would go on writing beside the next writer.
    """
    settings = settings_near(config_file)
    target, reach = site_for(site_args, settings)
    workspace = open_for(target, state_path, read_only=True, options=reach, settings=settings)
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


@cli.command("history")
@site_options
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="Only the newest this many applies.")
@config_option
def history_command(site_path: Path | str | None, site_args: SiteArguments, state_path: Path | None, output: str,
                    limit: int, config_file: Path | None) -> None:
    """List applies, newest first: time, ref, commit, counts and outcome."""
    settings = settings_near(config_file)
    target, reach = site_for(site_args, settings)
    workspace = open_for(target, state_path, read_only=True, options=reach, settings=settings)
    try:
        entries = workspace.state.applies(limit)
    finally:
        workspace.close()
    render_history(entries, sys.stdout, output)


@vars_group.command("effective")
@click.option("--computer", required=True, help="Device name (or a ResourceID).")
@click.argument("path", default="manifests", type=click.Path(path_type=Path))
@site_options
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
@settings_options
def vars_effective(computer: str, path: Path, site_path: Path | str | None, site_args: SiteArguments, output: str,
                   config_file: Path | None, secrets_dir: Path | None) -> None:
    """Each variable COMPUTER gets, its value (masked when hidden), where it comes from and what it overrides.

    Computer variables beat collection variables; between collections, priority 1 beats 9.
    """
    settings = settings_for(path, config_file, secrets_dir)
    desired = load(path, max_file_bytes=settings.limits.max_manifest_bytes)
    findings = validate(desired, settings)
    if has_errors(findings):
        render_findings.render_text(desired, [f for f in findings if f.severity.value == "error"], sys.stderr)
        sys.exit(EXIT_ERROR)
    where, reach = site_for(site_args, settings)
    site = open_site_for(where, options=reach)
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
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The embedded site (default: .reconcile/site.db here or in the nearest folder above).")
@click.option("--default-size", type=click.IntRange(0), default=None,
              help="High-risk deployments to larger collections need acknowledgement (0: off).")
@click.option("--maximum-size", type=click.IntRange(0), default=None,
              help="High-risk deployments to larger collections are refused (0: off).")
@click.option("--site-systems", type=click.Choice(["block", "warn"]), default=None,
              help="Collections containing site system servers: refuse, or require acknowledgement.")
def site_settings(site_path: Path | None, default_size: int | None, maximum_size: int | None,
                  site_systems: str | None) -> None:
    """Show or set the site's deployment verification settings (high-risk deployments)."""
    site = open_site_for(site_path, read_only=default_size is None and maximum_size is None and site_systems is None)
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


@site_group.command("serve")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The embedded site to serve (default: .reconcile/site.db here or in the nearest folder above).")
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="HOST:PORT (port 0: a free one).")
@click.option("--tls-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where the CA (ca.pem, for clients' --ca-bundle) and the server certificate are kept.")
@click.option("--user", "user", required=True, help="The administrator, DOMAIN\\name; password from "
              "RECONCILE_SERVE_PASSWORD.")
@click.option("--denied-user", default=None, help="An account that authenticates but holds no ConfigMgr role "
              "(answered 404 Access denied); password from RECONCILE_SERVE_DENIED_PASSWORD.")
@click.option("--hostname", default="localhost", show_default=True,
              help="The name clients use: Kerberos SPN HTTP/<hostname>, and a name on the certificate.")
@click.option("--hide-method", "hide", multiple=True, help="Leave a method out of $metadata (SetSequence or "
              "SMS_TaskSequencePackage.SetSequence); repeatable.")
@click.option("--hide-methods-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Methods to leave out, one per line.")
@click.option("--refuse-ntlm", is_flag=True, help="Refuse NTLM, as ConfigMgr 2509 and later do.")
@click.option("--keytab", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Accept Kerberos with the keys of HTTP/<hostname> in this keytab (needs python-gssapi).")
@click.option("--no-channel-binding", is_flag=True, help="Do not require the TLS channel binding in NTLM/Kerberos.")
@click.option("--refuse-schedule-writes", is_flag=True,
              help="Answer writes of AssignedSchedule with HTTP 500, as one site was seen to.")
@click.option("--request-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append each request (method, path, query, status, duration) as a JSON line.")
def site_serve(site_path: Path | None, listen: str, tls_dir: Path, user: str, denied_user: str | None, hostname: str,
               hide: tuple[str, ...], hide_methods_file: Path | None, refuse_ntlm: bool, keytab: Path | None,
               no_channel_binding: bool, refuse_schedule_writes: bool, request_log: Path | None) -> None:
    """Serve an embedded site as an AdminService (HTTPS, Negotiate), for tests and demos only."""
    from reconciler.site import serve

    accounts = [serve.Account.parse(user, _env_password("RECONCILE_SERVE_PASSWORD", "--user"))]
    if denied_user:
        accounts.append(serve.Account.parse(denied_user, _env_password("RECONCILE_SERVE_DENIED_PASSWORD",
                                                                       "--denied-user"), admin=False))
    host, port = serve.parse_listen(listen)
    hidden = frozenset(hide) | frozenset(serve.read_method_names(hide_methods_file) if hide_methods_file else ())
    config = serve.ServeConfig(site=site_path or default_site(), tls_dir=tls_dir, accounts=tuple(accounts),
                               host=host, port=port, hostname=hostname, hide_methods=hidden, refuse_ntlm=refuse_ntlm,
                               keytab=keytab, channel_binding=not no_channel_binding,
                               refuse_schedule_writes=refuse_schedule_writes, request_log=request_log)
    serve.run(config, lambda line: click.echo(line), lambda line: click.echo(line, err=True))


def _env_password(variable: str, option: str) -> str:
    import os

    value = os.environ.get(variable)
    if not value:
        raise click.UsageError(f"{option} needs the account's password in the environment variable {variable} "
                               "(never on the command line)")
    return value


def _state_file(site_path: Path | str | None, state_path: Path | str | None) -> Path | str:
    return state_path or state_path_for(site_path or default_site())


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
@click.option("--site", "site_path", type=SiteParam(), default=None,
              help="The state store is the one of this site: beside a site file (default .reconcile/site.db), or "
                   ".reconcile/<host>.state.db for a site URL.")
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
def state_check(site_path: Path | str | None, state_path: Path | None, output: str) -> None:
    """Check the state store's integrity (read-only): schema version, owned objects, journal, unfinished actions.

    Exit 0 when intact, 1 when damaged, missing or empty.
    """
    path = _state_file(site_path, state_path)
    check = check_state(path, os.environ.get(ENV_STATE_PASSWORD))
    _report("state store", check, "Restore it from a backup ('reconcile state backup FILE' makes one), "
            "or pass --new-state to a plan to start over (objects must then be taken over again)", output)


@state_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site", "site_path", type=SiteParam(), default=None,
              help="The state store is the one of this site: beside a site file, or .reconcile/<host>.state.db "
                   "for a site URL.")
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def state_backup(file: Path, site_path: Path | str | None, state_path: Path | None, force: bool) -> None:
    """Copy the state store to FILE: a consistent snapshot, safe while a controller writes (SQLite's backup API)."""
    path = _state_file(site_path, state_path)
    backup_state(path, file, force)
    click.echo(f"backed up {path} to {file}")


@site_group.command("check")
@site_options
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
@config_option
def site_check(site_path: Path | str | None, site_args: SiteArguments, output: str, config_file: Path | None) -> None:
    """First contact with a site, read-only: who you are to it, its code and version, what its $metadata offers,
    which operations go over REST and which over WinRM, what you may read and whether you may write.

    For an embedded site file (default .reconcile/site.db): its integrity, schema version and counts, and the
    same facts as they are for a file. Exit 0 when all is well, 1 otherwise.
    """
    settings = settings_near(config_file)
    target, reach = site_for(site_args, settings)
    scope = scope_summary(settings.scope)
    if isinstance(target, str):
        report = check_remote(reach)
        if output == "json":
            render_report.render_json(report, sys.stdout, scope=scope)
        else:
            render_report.render_text(report, sys.stdout)
            render_report.render_scope_text(scope, sys.stdout)
        sys.exit(EXIT_OK if report.ok else EXIT_ERROR)
    path = target or default_site()
    check = check_site(path)
    report = embedded_report(path, reach.read_only) if check.ok else None
    if output == "json":
        if report is None:
            render_check.render_json(check, sys.stdout)
        else:
            render_report.render_json(report, sys.stdout, check, scope=scope)
    else:
        render_check.render_text("embedded site", check, "Restore it from a backup ('reconcile site backup FILE' "
                                 "makes one)", sys.stdout)
        if report is not None:
            render_report.render_text(report, sys.stdout)
            render_report.render_scope_text(scope, sys.stdout)
    sys.exit(EXIT_OK if check.ok and (report is None or report.ok) else EXIT_ERROR)


@site_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The embedded site (default: .reconcile/site.db here or in the nearest folder above).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def site_backup(file: Path, site_path: Path | None, force: bool) -> None:
    """Copy the embedded site to FILE: a consistent snapshot, safe while it is written to."""
    site_path = site_path or default_site()
    backup_site(site_path, file, force)
    click.echo(f"backed up {site_path} to {file}")


