"""``reconcile serve``: the read-only web view without a controller (the state store and a live plan)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import cli
from reconciler.cli.common import (
    EXIT_ERROR,
    StateParam,
    cache_folder,
    open_for,
    settings_for,
    settings_options,
    site_for,
    site_options,
)
from reconciler.controller.loop import parse_duration
from reconciler.site.options import SiteArguments
from reconciler.state.target import StateTarget
from reconciler.web import Access, WebAccessError, WebServer, WebView, access_for, parse_listen
from reconciler.web.access import TOKEN_ENV
from reconciler.web.view import manifests_source

web_token_option = click.option(
    "--web-token", default=None, metavar="TOKEN", envvar=TOKEN_ENV, show_envvar=True,
    help="Token the web view requires (as 'Authorization: Bearer TOKEN' or the sign-in cookie); needed to listen "
         "on an address other than loopback. Prefer the environment variable: a command line is visible to others.")


def listen_access(listen: str, token: str | None, *, strict: bool = False) -> tuple[str, int, Access]:
    """``--listen`` and the token rule for it; a value that cannot be used is one ``error:`` line (exit 1)."""
    try:
        host, port = parse_listen(listen)
        return host, port, access_for(host, token, strict=strict)
    except WebAccessError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)


@cli.command("serve")
@click.argument("path", default="manifests", type=click.Path(path_type=Path))
@site_options
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@click.option("--repo", default=None, metavar="PATH_OR_URL",
              help="Read PATH from this Git repository instead of the file system (no checkout).")
@click.option("--ref", default=None, help="Branch, tag or commit to read with --repo (default HEAD).")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Where to serve the view (port 0: any free port). Another address than loopback needs a token.")
@web_token_option
@click.option("--refresh", default="30s", show_default=True,
              help="How often to look at the site for changes made there (the manifests and a controller's ticks "
                   "are looked at every second): 10s, 1m.")
@settings_options
def serve_command(path: Path, site_path: Path | str | None, site_args: SiteArguments, state_path: StateTarget | None,
                  repo: str | None, ref: str | None, listen: str, web_token: str | None, refresh: str,
                  config_file: Path | None, secrets_dir: Path | None) -> None:
    """Serve the read-only web view of the site against the manifests under PATH, until stopped.

    The same view a controller serves on --listen, made here from the state store and a live plan (as
    'reconcile plan' makes it, without the lease): an overview of every object and its status, each object's
    changes, step tree and history, the plan, and the history of applies. It never writes to the site.
    """
    try:
        every = parse_duration(refresh)
    except ValueError:
        raise click.BadParameter("use seconds or 10s, 1m", param_hint="--refresh") from None
    host, port, access = listen_access(listen, web_token, strict=True)
    settings = settings_for(path, config_file, secrets_dir)
    target, reach = site_for(site_args, settings)
    source = manifests_source(path, repo, ref, cache_folder(target), settings.limits.max_manifest_bytes)
    view = WebView(lambda: open_for(target, state_path, read_only=True, options=reach,
                                    settings=settings), source, settings,
                   path.parent if path.is_file() else path, access, refresh=every).start()
    stop = threading.Event()

    def stopping(signum: int, frame: Any) -> None:
        stop.set()

    try:
        try:
            server = WebServer(view.app, host, port)
        except OSError as exc:
            click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_ERROR)
        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
        shown = f"[{host}]" if ":" in host else host
        site = view.refresher.snapshot.site_code if view.refresher.snapshot is not None else ""
        click.echo(f"serving the web view of site {site} at http://{shown}:{server.port}/ (read-only; SIGTERM or "
                   "Ctrl-C stops it)", err=True)
        try:
            stop.wait()
        finally:
            server.close()
    finally:
        view.close()
