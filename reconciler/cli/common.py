"""What the commands share: exit codes, settings options, opening the site and the state store."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from reconciler.config import Config, ConfigError, load_config, manifests_root
from reconciler.errors import ReconcilerError
from reconciler.site import Site, SiteTarget
from reconciler.site.options import Auth, SiteArguments, SiteOptions, resolve_site_options
from reconciler.state import is_state_url
from reconciler.state.target import StateTarget, resolve_state
from reconciler.workspace import Workspace, default_site, open_site_alone, open_workspace

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
#: A bug in the tool (sysexits' EX_SOFTWARE): an exception it did not raise on purpose; the trace is in a file.
EXIT_INTERNAL = 70


def use_color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def settings_options(command: Callable[..., None]) -> Callable[..., None]:
    """--config and --secrets-dir: where the settings and the secrets of the manifests are, on this machine."""
    command = click.option("--secrets-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                           help="Folder of file secrets (default: secrets/ in the manifests folder, or "
                                "RECONCILE_SECRETS_DIR); a valueFrom file secrets/NAME is read as DIR/NAME.")(command)
    return click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Settings file (default: reconcile.yaml in the manifests folder, on local disk; never "
                             "read from Git).")(command)


def settings_for(path: Path, config_file: Path | None, secrets_dir: Path | None) -> Config:
    """The settings of the manifests under PATH (the local folder of that path, also with --repo)."""
    try:
        return load_config(manifests_root(path), config_file, secrets_dir)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)


def echo_errors(exc: ReconcilerError, file: Path | None = None) -> None:
    """``error: …``, one line per problem, each naming the file (or archive entry) it is about."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        named = file is None or line.startswith(str(file))
        click.echo(f"error: {line}" if named else f"error: {file}: {line}", err=True)


def open_for(site: SiteTarget | None, state: StateTarget | None, new_state: bool = False, read_only: bool = False,
             options: SiteOptions | None = None, settings: Config | None = None) -> Workspace:
    """The site and its state store (``read_only``: this command never writes to the site).

    ``state`` is ``--state`` (a file or a ``postgresql://`` URL); without it, ``state.url`` of the settings, else
    the file beside the site. A site or state store that cannot be opened raises its typed error, which the top
    of the CLI prints as one ``error:`` line (exit 1; never a usage error, whose exit code 2 means "changes").
    """
    target, password = resolve_state(state, settings)
    workspace = open_workspace(site, target, new_state=new_state, read_only=read_only, options=options,
                               state_password=password)
    if workspace.created:
        announce_created(workspace.site)
    return workspace


def open_site_for(site_path: SiteTarget | None, read_only: bool = True, options: SiteOptions | None = None) -> Site:
    """The site alone, for commands that never read the state store: they must not create an empty one."""
    site, created = open_site_alone(site_path, read_only=read_only, options=options)
    if created:
        announce_created(site)
    return site


def announce_created(site: Site) -> None:
    click.echo(f"created the embedded site {site.location} (site {site.site_code}) with the demo inventory, as no "
               f".reconcile/ folder was found in {Path.cwd()} or above it; use --site to choose another", err=True)


actor_option = click.option(
    "--actor", default=None, metavar="NAME",
    help="Who this is done for, as the audit records it (default: RECONCILE_ACTOR, else the CI's own variable such as "
         "GITHUB_ACTOR, BUILD_REQUESTEDFOR or GITLAB_USER_LOGIN, else the OS user).")


new_state_option = click.option(
    "--new-state", is_flag=True,
    help="Start a new, empty state store when it is missing although the site holds objects this tool may manage "
         "(they must then be taken over again with --adopt or 'reconcile export'). Without it that is an error.")




class StateParam(click.ParamType):
    """``--state``: a state file (a path) or a PostgreSQL URL (kept as text: a Path would fold ``//``)."""

    name = "FILE|URL"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> StateTarget:
        if isinstance(value, Path):
            return value
        text = str(value)
        return text if is_state_url(text) else Path(text)


class SiteParam(click.ParamType):
    """``--site``: an embedded site file (a path) or an AdminService URL (kept as text: a Path would fold ``//``)."""

    name = "FILE|URL"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str | Path:
        if isinstance(value, Path):
            return value
        text = str(value)
        return text if "://" in text[:16] else Path(text)


def site_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--site`` and how to reach a remote site: ``--ca-bundle``, ``--insecure``, ``--auth``, ``--read-only``.

    The values reach the command as ``site_path`` and ``site_args`` (a :class:`SiteArguments`); credentials
    have no option on purpose (``RECONCILE_SITE_USERNAME`` / ``_PASSWORD`` / ``_TOKEN``, or ``kinit``).
    """
    options = [
        click.option("--site", "site_path", type=SiteParam(), default=None,
                     help="Embedded site file (default .reconcile/site.db, created with demo inventory), or a real "
                          "site: https://<SMS Provider>/AdminService (default: site.url in reconcile.yaml)."),
        click.option("--ca-bundle", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="PEM file of the CA that issued the site's certificate (the site's SMS Issuing root or "
                          "your PKI root); default site.caBundle, else SSL_CERT_FILE, else the system's CAs."),
        click.option("--insecure", is_flag=True,
                     help="Do not verify the site's TLS certificate (and say so on every run). Never in production."),
        click.option("--auth", type=click.Choice([a.value for a in Auth]), default=None,
                     help="negotiate (default: Kerberos, then NTLM), kerberos, ntlm (refused by ConfigMgr 2509 and "
                          "later) or bearer (RECONCILE_SITE_TOKEN, through a cloud management gateway)."),
        click.option("--read-only", is_flag=True,
                     help="Refuse every write to the site: plans, status, export and drift reports only."),
    ]
    for option in reversed(options):
        command = option(command)

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> None:
        kwargs["site_args"] = SiteArguments(site=kwargs.get("site_path"), ca_bundle=kwargs.pop("ca_bundle"),  # type: ignore[arg-type]
                                            insecure=bool(kwargs.pop("insecure")), auth=kwargs.pop("auth"),  # type: ignore[arg-type]
                                            read_only=bool(kwargs.pop("read_only")))
        command(*args, **kwargs)

    return wrapper


config_option = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Settings file with the site: section (default: manifests/reconcile.yaml when it exists).")


def settings_near(config_file: Path | None) -> Config:
    """The settings of a command that names no manifests: ``--config``, else ``manifests/reconcile.yaml``."""
    return settings_for(Path("manifests"), config_file, None)


def site_for(arguments: SiteArguments, settings: Config | None) -> tuple[SiteTarget | None, SiteOptions]:
    """The site target and its options; a setting that cannot be used is one ``error:`` line (exit 1).

    Every run prints the options' notices on stderr (``--insecure`` is never silent).
    """
    try:
        target, options = resolve_site_options(arguments, settings.site if settings else None,
                                               settings.secrets if settings else None)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    for line in options.notices():
        click.echo(line, err=True)
    return target, options


def refuse_read_only(options: SiteOptions, target: SiteTarget | None, what: str) -> None:
    """A command that would write stops before its first request when the site is read-only."""
    try:
        options.ensure_writable(what, str(target) if target is not None else None)
    except ReconcilerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)


def cache_folder(target: SiteTarget | None) -> Path:
    """Where a run keeps its caches (Git clones, parse cache): beside an embedded site, else ``.reconcile/``."""
    if isinstance(target, Path):
        return target.parent
    return default_site().parent
