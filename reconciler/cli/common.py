"""What the commands share: exit codes, settings options, opening the site and the state store."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from reconciler.config import Config, ConfigError, load_config, manifests_root
from reconciler.errors import ReconcilerError
from reconciler.site import Site
from reconciler.workspace import Workspace, open_site_alone, open_workspace

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


def open_for(site: Path | None, state: Path | None, new_state: bool = False, read_only: bool = False) -> Workspace:
    """The site and its state store (``read_only``: this command never writes to the site).

    A site or state store that cannot be opened raises its typed error, which the top of the CLI prints
    as one ``error:`` line (exit 1; never a usage error, whose exit code 2 means "changes" to a CI job).
    """
    workspace = open_workspace(site, state, new_state=new_state, read_only=read_only)
    if workspace.created:
        announce_created(workspace.site)
    return workspace


def open_site_for(site_path: Path | None, read_only: bool = True) -> Site:
    """The site alone, for commands that never read the state store: they must not create an empty one."""
    site, created = open_site_alone(site_path, read_only=read_only)
    if created:
        announce_created(site)
    return site


def announce_created(site: Site) -> None:
    click.echo(f"created the embedded site {site.location} (site {site.site_code}) with the demo inventory; use "
               "--site to choose another", err=True)


new_state_option = click.option(
    "--new-state", is_flag=True,
    help="Start a new, empty state store when it is missing although the site holds objects this tool may manage "
         "(they must then be taken over again with --adopt or 'reconcile export'). Without it that is an error.")


