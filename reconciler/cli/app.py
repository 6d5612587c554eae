"""The ``reconcile`` command group: ``reconcile [PATH]`` runs apply, and no traceback reaches a person."""

from __future__ import annotations

import logging
import os
import sys

import click

from reconciler.cli.common import EXIT_ERROR, EXIT_INTERNAL
from reconciler.errors import ReconcilerError
from reconciler.tracefile import internal_error_line


class _DefaultGroup(click.Group):
    """``reconcile [PATH] [OPTIONS]`` is the main job: anything that is not a sub-command runs ``apply``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # While the shell completes (resilient parsing) with nothing typed before the word, the word is a command
        # to complete: routing it to apply would complete apply's PATH, offering file names for "reconcile ex".
        bare = not args and not ctx.resilient_parsing
        if bare or (args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version")):
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
      reconcile completion bash|zsh|fish|powershell   print a shell completion script

    'reconcile apply [PATH]' (or just 'reconcile [PATH]') plans and applies; 'reconcile apply FILE' applies
    a plan saved with 'reconcile plan --out FILE'.

    Without --site, the embedded site in the nearest .reconcile/ folder (here or above, as git finds a
    repository) is used; with none, .reconcile/site.db is created here with the demo inventory.
    --log-level debug (anywhere on the command line) or RECONCILE_LOG_LEVEL=debug prints diagnostics on
    stderr; secrets are never logged.
    """


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


