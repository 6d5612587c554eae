"""``reconcile controller``: keep the site equal to a Git branch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.app import cli
from reconciler.cli.common import (
    EXIT_ERROR,
    StateParam,
    cache_folder,
    new_state_option,
    open_for,
    refuse_read_only,
    settings_for,
    settings_options,
    site_for,
    site_options,
)
from reconciler.cli.serve import listen_access, web_token_option
from reconciler.controller.loop import Loop, LoopConfig, json_emitter, parse_duration, text_emitter
from reconciler.controller.metrics import Metrics
from reconciler.controller.metrics import serve as serve_metrics
from reconciler.controller.tick import Controller, ControllerConfig
from reconciler.notify import Notifier, NotifyError, notification_link, notification_targets
from reconciler.pipeline import PlanOptions
from reconciler.plan.planner import MAX_DELETE_PERCENT
from reconciler.site.options import SiteArguments
from reconciler.web.access import TOKEN_ENV
from reconciler.web.view import controller_view


@cli.group("controller", invoke_without_command=True)
@click.option("--repo", default=None, metavar="PATH_OR_URL",
              help="Git repository to follow (required to run the controller; not for pause and resume).")
@click.option("--ref", default="main", show_default=True, help="Branch (or tag, commit) to keep the site equal to.")
@click.option("--path", "manifests_path", default="manifests", show_default=True, help="Folder inside the repository.")
@click.option("--interval", default="5m", show_default=True, help="Time between ticks: 30s, 5m, 1h.")
@click.option("--self-heal/--no-self-heal", default=True, show_default=True,
              help="Apply changes (and revert drift), or only report them.")
@click.option("--prune", is_flag=True, help="Delete managed objects that no manifest describes any more.")
@click.option("--max-delete", type=click.FloatRange(0, 100), default=MAX_DELETE_PERCENT, show_default=True,
              metavar="PERCENT", help="Block a plan that deletes more than this share of the managed objects.")
@click.option("--watch", is_flag=True, help="Also tick when files change in the working copy of --repo.")
@click.option("--refresh-secrets", is_flag=True,
              help="Every interval tick also reads the secrets the managed objects use and writes rotated ones.")
@click.option("--commit-poll", default="2s", show_default=True,
              help="How often to look for a new commit on the ref (0 turns it off: interval and --watch only).")
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Serve /healthz, /readyz, /status, /metrics (Prometheus) and the read-only web view (at /), for "
                   "example 127.0.0.1:9180. On another address than loopback the web view needs --web-token.")
@web_token_option
@click.option("--lease-seconds", type=click.FloatRange(1), default=30, show_default=True,
              help="How long the writer's lease lasts without renewal; a standby takes over after it expires.")
@site_options
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="One line per tick and per action, as text or JSON (secrets are never logged).")
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@click.option("--notify", "notify_urls", multiple=True, metavar="URL",
              help="Also notify changes of state here (repeatable): a webhook https:// URL (Slack and Teams "
                   "webhooks are known by their host; slack+, teams+ or webhook+ in front says so), or "
                   "smtp://host[:port]?from=A&to=B (smtp+starttls://, smtps://). See notifications in reconcile.yaml.")
@new_state_option
@settings_options
@click.pass_context
def controller_command(ctx: click.Context, repo: str | None, ref: str, manifests_path: str, interval: str,
                       self_heal: bool, prune: bool, max_delete: float, watch: bool, refresh_secrets: bool,
                       commit_poll: str, listen: str | None, lease_seconds: float,
                       site_path: Path | str | None, site_args: SiteArguments, state_path: Path | None,
                       log_format: str, once: bool, notify_urls: tuple[str, ...], new_state: bool,
                       config_file: Path | None, secrets_dir: Path | None, web_token: str | None) -> None:
    """Keep the site equal to a Git branch: tick on an interval, on new commits and (--watch) on file changes.

    Settings (reconcile.yaml) and secrets are read from the local folder named by --path, never from Git.
    'reconcile controller pause' stops every controller of the site from applying (they go on reporting drift)
    until 'reconcile controller resume'.
    """
    if ctx.invoked_subcommand is not None:
        return
    if repo is None:
        raise click.UsageError("Missing option '--repo' (the Git repository the controller follows).")
    try:
        seconds = parse_duration(interval)
        poll = parse_duration(commit_poll)
    except ValueError:
        raise click.BadParameter("use seconds or 30s, 5m, 1h", param_hint="--interval/--commit-poll") from None
    settings = settings_for(Path(manifests_path), config_file, secrets_dir)
    try:
        targets = notification_targets(settings, notify_urls)
    except NotifyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    target, reach = site_for(site_args, settings)
    if self_heal:
        refuse_read_only(reach, target, "the controller with --self-heal (--no-self-heal only reports drift)")
    workspace = open_for(target, state_path, new_state, options=reach, settings=settings)
    cache_dir = cache_folder(target)
    config = ControllerConfig(repo=repo, ref=ref, path=manifests_path, self_heal=self_heal, prune=prune,
                              max_delete=max_delete, lease_seconds=lease_seconds,
                              secrets_base=Path(manifests_path), cache_dir=cache_dir, refresh_secrets=refresh_secrets,
                              settings=settings)
    controller = Controller(config, workspace.site, workspace.state)
    notifier = Notifier(targets)
    controller.notifier, controller.link = notifier, notification_link(settings, listen)
    metrics = Metrics()
    server = view = None
    if listen:
        host, port, access = listen_access(listen, web_token)
        if access.refused:
            click.echo(f"the web view is off on {host}: it needs --web-token (or {TOKEN_ENV}) on an address other "
                       "than loopback; /healthz, /readyz, /status and /metrics are served", err=True)
        else:
            view = controller_view(lambda: open_for(target, state_path, read_only=True, options=reach,
                                                    settings=settings), repo, ref,
                                   manifests_path, cache_dir, settings, access,
                                   PlanOptions(prune=prune, max_delete=max_delete), controller.holder,
                                   self_heal).start(wait=None)
        server = serve_metrics(metrics, host, port, web=view)
    emit = json_emitter(sys.stdout) if log_format == "json" else text_emitter(sys.stdout)
    loop = Loop(controller, LoopConfig(interval=seconds, poll=min(poll, seconds), watch=Path(repo) if watch else None,
                                       once=once), metrics, emit)
    loop.install_signals()
    try:
        code = loop.run()
    finally:
        if server is not None:
            server.shutdown()
        if view is not None:
            view.close()
        notifier.close()
        controller.close()
        workspace.close()
    sys.exit(code)


