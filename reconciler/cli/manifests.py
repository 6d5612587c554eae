"""Commands on manifests themselves: validate, convert, crds, and import and export of console objects."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.app import cli
from reconciler.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    StateParam,
    config_option,
    echo_errors,
    open_for,
    open_site_for,
    settings_for,
    settings_near,
    settings_options,
    site_for,
    site_options,
    use_color,
)
from reconciler.convert import manifest_to_xml, read_xml_file, xml_to_manifest
from reconciler.errors import ReconcilerError
from reconciler.export import export_site, export_zip, import_zip
from reconciler.models import KINDS
from reconciler.render import findings as render_findings
from reconciler.site.options import SiteArguments
from reconciler.source import yamlfile
from reconciler.source.loader import load
from reconciler.validate import has_errors, validate


@cli.command("validate")
@click.argument("path", default="manifests", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, or json for tools (a versioned document: format_version).")
@click.option("--no-color", is_flag=True, help="No colours (also when NO_COLOR is set).")
@settings_options
def validate_command(path: Path, output: str, no_color: bool, config_file: Path | None,
                     secrets_dir: Path | None) -> None:
    """Validate every *.yaml / *.yml under PATH (default: manifests/).

    Each document is checked against its kind, then the set: unique names, references, where secrets
    may come from (reconcile.yaml), and the rules ConfigMgr enforces that need no live site. Exit 0 when
    valid, 1 otherwise.
    """
    settings = settings_for(path, config_file, secrets_dir)
    state = load(path, max_file_bytes=settings.limits.max_manifest_bytes)
    findings = validate(state, settings)
    if output == "json":
        render_findings.render_json(state, findings, sys.stdout)
    else:
        render_findings.render_text(state, findings, sys.stdout, color=use_color(no_color))
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
        echo_errors(exc, file)
        sys.exit(EXIT_ERROR)


@cli.command("crds")
@click.option("--out", "out_dir", default="crds", type=click.Path(file_okay=False, path_type=Path),
              show_default=True, help="Folder to write the schemas and CRDs to.")
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


@cli.command("export")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write one manifest per object here (folders mirror console folders).")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Instead, write a console-compatible export ZIP of one task sequence (--name).")
@click.option("--name", "console_name", default=None, help="Console name of the task sequence for --zip.")
@site_options
@click.option("--state", "state_path", type=StateParam(), default=None,
              help="State store (default: beside an embedded site; .reconcile/<host>.state.db for a URL).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(list(KINDS)), help="Only these kinds.")
@click.option("--name-filter", default=None, metavar="GLOB", help="Only objects whose console name matches.")
@config_option
def export_command(out_dir: Path | None, zip_path: Path | None, console_name: str | None,
                   site_path: Path | str | None, site_args: SiteArguments, state_path: Path | None,
                   kinds: tuple[str, ...], name_filter: str | None, config_file: Path | None) -> None:
    """Export the site to manifests (and adopt what was exported), or one task sequence to a console ZIP."""
    if (out_dir is None) == (zip_path is None):
        raise click.UsageError("give either --out DIR or --zip FILE.zip --name NAME")
    settings = settings_near(config_file)
    target, reach = site_for(site_args, settings)
    if zip_path is not None:
        if not console_name:
            raise click.UsageError("--zip needs --name (the task sequence's console name)")
        site = open_site_for(target, options=reach)  # a ZIP needs no state store: none is created
        try:
            export_zip(site.read(), zip_path, console_name)
        finally:
            site.close()
        click.echo(f"wrote {zip_path} (no passwords, as the console exports)")
        return
    # Exporting adopts what it writes: it is how a site is taken over, also after the state store was lost.
    workspace = open_for(target, state_path, new_state=True, read_only=True,  # adopting writes the store only
                         options=reach, settings=settings)
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
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    if result.secrets:
        click.echo("Secrets were not exported; provide them at apply time:")
        for obj, env in result.secrets:
            click.echo(f"  ${env}  ({obj})")


@cli.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("manifests"),
              show_default=True, help="Folder to write the manifests to.")
@click.option("--on-conflict", type=click.Choice(["ignore", "overwrite", "new"]), default="ignore",
              show_default=True, help="A manifest of the same name exists: keep it, replace it, or write a copy.")
def import_command(archive: Path, out_dir: Path, on_conflict: str) -> None:
    """Import a ConfigMgr console export ZIP (Export Task Sequence wizard) as manifests."""
    try:
        result = import_zip(archive, out_dir, on_conflict)
    except ReconcilerError as exc:
        echo_errors(exc, archive)
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


