"""``reconcile prestage``: a prestaged content file of everything a task sequence needs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.app import cli
from reconciler.cli.common import EXIT_ERROR, config_option, open_site_for, settings_near, site_for, site_options
from reconciler.prestage import PrestageError, prestage
from reconciler.render import prestage as render_prestage
from reconciler.site.options import SiteArguments


@cli.command("prestage")
@click.argument("task_sequence")
@click.option("--out", "out", required=True, metavar="FILE.pkgx",
              help="The file to write. On a real site a path on the WinRM host (C:\\Prestage\\x.pkgx or a share); "
                   "on the embedded site a local file (a listing: it holds no content bytes).")
@click.option("--dp", "source_dp", default=None, metavar="SOURCE_DP",
              help="Distribution point to take the content from (default: the first that holds all of it).")
@click.option("--force", is_flag=True, help="Overwrite the listing file if it exists (embedded site).")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
@site_options
@config_option
def prestage_command(task_sequence: str, out: str, source_dp: str | None, force: bool, output: str,
                     site_path: Path | str | None, site_args: SiteArguments, config_file: Path | None) -> None:
    """Prestage every package TASK_SEQUENCE references (its child sequences' too), by PackageID or console name.

    A real site runs Publish-CMPrestageContent on the WinRM host, which writes the file there. The embedded site
    writes a listing of the packages and versions instead. Nothing on the site changes.
    """
    if not out.lower().endswith(".pkgx"):
        raise click.BadParameter("the file name ends in .pkgx, as prestaged content files do", param_hint="--out")
    target, reach = site_for(site_args, settings_near(config_file))
    site = open_site_for(target, options=reach)
    try:
        result = prestage(site, task_sequence, out, source_dp, options=reach, force=force)
    except PrestageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        site.close()
    render_prestage.render(result, sys.stdout, output)
