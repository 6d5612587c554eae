"""``reconcile site check``: the first-contact report of a site, as text or JSON."""

from __future__ import annotations

import json
from typing import Any, TextIO

from reconciler.plan.scope import describe_scope
from reconciler.render.schemas import SITE_CHECK_FORMAT_VERSION
from reconciler.site.report import SiteReport
from reconciler.storage import FileCheck


def render_text(report: SiteReport, out: TextIO) -> None:
    if report.kind == "embedded site":
        out.write(f"  site {report.site_code or '?'}: an embedded site (a SQLite file; no AdminService, no WinRM)\n")
        out.write(f"  you are: {report.account} ({report.account_from})\n")
        out.write(f"  operations: {report.paths_note}\n")
        out.write(f"  may write: {report.may_write}: {report.write_reason}\n")
        return
    out.write(f"site {report.location}: {'reachable' if report.ok else 'PROBLEMS'}\n")
    out.write(f"  authentication: {report.authentication}\n")
    roles = f"; roles: {', '.join(report.roles)}" if report.roles else ""
    out.write(f"  you are: {report.account} (from {report.account_from}){roles}\n")
    if report.site_code:
        out.write(f"  site: {report.site_code} {report.site_name or ''}, version {report.version or '?'}, build "
                  f"{report.build if report.build is not None else '?'} (from {report.site_from})\n")
    elif report.site_from:
        out.write(f"  site: {report.site_from}\n")
    if report.classes:
        instance = sum(len(m) for m in report.instance_methods.values())
        out.write(f"  $metadata: {len(report.classes)} classes, {len(report.static_methods)} static methods, "
                  f"{instance} instance methods\n")
        if report.static_methods:
            out.write(f"    static methods: {', '.join(report.static_methods)}\n")
        for cls, methods in report.instance_methods.items():
            out.write(f"    {cls}: {', '.join(methods)}\n")
        if report.not_offered:
            out.write(f"    not offered (this tool reads them): {', '.join(report.not_offered)}\n")
    if report.paths:
        out.write("  operations:\n")
        width = max(len(k) for k in report.paths)
        for operation, path in report.paths.items():
            out.write(f"    {operation:<{width}}  {path}\n")
    elif report.paths_note:
        out.write(f"  operations: {report.paths_note}\n")
    winrm = report.winrm or ("not configured (site.winrm in reconcile.yaml): operations that need it are "
                             "unavailable, and plans block them")
    out.write(f"  WinRM: {winrm}\n")
    readable = [a.cls for a in report.access if a.readable]
    if report.access:
        out.write(f"  may read: {len(readable)} of {len(report.access)} classes this tool reads\n")
    out.write(f"  may write: {report.may_write}: {report.write_reason}\n")
    for problem in report.problems:
        out.write(f"  - {problem}\n")


def render_scope_text(scope: dict[str, Any], out: TextIO) -> None:
    """What the manifests may touch (``scope:`` of reconcile.yaml), or that nothing restricts them."""
    out.write(f"  scope: {describe_scope(scope)}\n")


def render_json(report: SiteReport, out: TextIO, check: FileCheck | None = None,
                scope: dict[str, Any] | None = None) -> None:
    """The report; for an embedded site, the integrity check's document as before, with the report under
    ``report``; ``scope`` (the plan document's form) at the top."""
    document: dict[str, Any] = {"format_version": SITE_CHECK_FORMAT_VERSION, **report.to_json()}
    if check is not None:
        document = {"format_version": SITE_CHECK_FORMAT_VERSION, "path": str(check.path), "ok": check.ok,
                    "missing": check.missing, "problems": list(check.problems),
                    "schema_version": check.schema_version, "known_version": check.known_version,
                    "counts": check.counts, "report": report.to_json()}
    if scope is not None:
        document["scope"] = scope
    json.dump(document, out, indent=2, ensure_ascii=False)
    out.write("\n")
