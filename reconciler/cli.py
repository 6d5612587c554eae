"""The ``reconcile`` command: parse options, call the library, render, pick an exit code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from reconciler.convert import manifest_to_xml, xml_to_manifest
from reconciler.errors import CodecError, ReconcilerError, UnresolvedReference
from reconciler.render import findings as render_findings
from reconciler.source import yamlfile
from reconciler.source.loader import load
from reconciler.validate import has_errors, validate

EXIT_OK, EXIT_ERROR = 0, 1


def _color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="configmgr-ts-reconciler", prog_name="reconcile")
def cli() -> None:
    """GitOps for Configuration Manager task sequences: manifests in Git, the site made to match.

    \b
    Common commands:
      reconcile validate manifests/          check manifests before anything touches a site
      reconcile convert export.xml           turn task sequence XML into a manifest
      reconcile convert --to xml ts.yaml     turn a manifest into task sequence XML
      reconcile crds                         regenerate the JSON schemas and CRDs
    """


@cli.command("validate")
@click.argument("path", default="manifests", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-color", is_flag=True, help="No colours (also when NO_COLOR is set).")
def validate_command(path: Path, output: str, no_color: bool) -> None:
    """Validate every *.yaml / *.yml under PATH (default: manifests/).

    Each document is checked against its kind, then the set: unique names, references, and the rules
    ConfigMgr enforces that need no live site. Exit 0 when valid, 1 otherwise.
    """
    state = load(path)
    findings = validate(state)
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
            converted = xml_to_manifest(file.read_bytes(), where=str(file), name=name, default_name=file.stem)
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
    except (CodecError, UnresolvedReference) as exc:
        click.echo(f"{file}: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except ReconcilerError as exc:
        click.echo(f"{file}: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)


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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
