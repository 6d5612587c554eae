"""``reconcile site show``: the live objects of a site, masked values never shown."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, TextIO

from reconciler.render.schemas import SITE_SHOW_FORMAT_VERSION
from reconciler.site.records import LiveState


def site_document(live: LiveState) -> dict[str, Any]:
    def variables(items: Any) -> list[dict[str, Any]]:
        return [{"name": v.name, "value": "(sensitive)" if v.masked else v.value, "masked": v.masked} for v in items]

    return {
        "format_version": SITE_SHOW_FORMAT_VERSION,
        "site": live.site_code,
        "collections": [asdict(c) for c in sorted(live.collections.values(), key=lambda c: c.id)],
        "distribution_points": sorted(live.distribution_points),
        "distribution_point_groups": [asdict(g) for g in live.dp_groups.values()],
        "packages": [{**asdict(p), "type": p.type.value} for p in sorted(live.packages.values(), key=lambda p: p.id)],
        "content": [{"package": s.package_id, "dp": s.dp, "state": s.state.name,
                     "installed_version": s.installed_version}
                    for s in sorted(live.content.values(), key=lambda s: (s.package_id, s.dp))],
        "task_sequences": [{k: v for k, v in asdict(t).items() if k != "sequence"}
                          for t in sorted(live.task_sequences.values(), key=lambda t: t.id or "")],
        "deployments": [asdict(d) for d in sorted(live.deployments.values(), key=lambda d: d.id or "")],
        "collection_variables": [{"collection": s.collection_id, "precedence": s.precedence,
                                 "variables": variables(s.variables)} for s in live.collection_settings.values()],
        "computer_variables": [{"resource_id": m.resource_id, "computer": live.computers[m.resource_id].name,
                               "variables": variables(m.variables)} for m in live.machine_settings.values()],
    }


def render(live: LiveState, out: TextIO, output: str = "text") -> None:
    doc = site_document(live)
    if output == "json":
        json.dump(doc, out, indent=2)
        out.write("\n")
        return
    out.write(f"Site {doc['site']}\n")
    out.write(f"\nCollections ({len(doc['collections'])}):\n")
    for c in doc["collections"]:
        flags = " built-in" if c["built_in"] else ""
        flags += " contains site systems" if c["has_site_systems"] else ""
        out.write(f"  {c['id']}  {c['name']}  ({c['member_count']} members{',' + flags if flags else ''})\n")
    out.write(f"\nDistribution points ({len(doc['distribution_points'])}): {', '.join(doc['distribution_points'])}\n")
    for g in doc["distribution_point_groups"]:
        out.write(f"  group {g['name']}: {', '.join(g['members'])}\n")
    out.write(f"\nPackages ({len(doc['packages'])}):\n")
    for p in doc["packages"]:
        share = ", package share" if p["share_enabled"] else ""
        out.write(f"  {p['id']}  {p['type']:<30} {p['name']}  (version {p['source_version']}{share})\n")
    out.write(f"\nTask sequences ({len(doc['task_sequences'])}):\n")
    for t in doc["task_sequences"]:
        state = "enabled" if t["enabled"] else "disabled"
        kind = t["ts_type"] or "type kept by the site"
        out.write(f"  {t['id']}  {t['name']}  [{kind}, {state}, folder {t['folder'] or '(root)'}]\n")
    out.write(f"\nDeployments ({len(doc['deployments'])}):\n")
    for d in doc["deployments"]:
        purpose = "Required" if d["offer_type"] == 0 else "Available"
        out.write(f"  {d['id']}  {d['name']}  ({purpose}, {d['package_id']} → {d['collection_id']})\n")
    out.write(f"\nContent ({len(doc['content'])} package/DP pairs):\n")
    for s in doc["content"]:
        out.write(f"  {s['package']} on {s['dp']}: {s['state'].lower()} (version {s['installed_version']})\n")
    for cv in doc["collection_variables"]:
        out.write(f"\nVariables of collection {cv['collection']} (priority {cv['precedence']}):\n")
        for v in cv["variables"]:
            out.write(f"  {v['name']} = {v['value']}\n")
    for mv in doc["computer_variables"]:
        out.write(f"\nVariables of computer {mv['computer']} ({mv['resource_id']}):\n")
        for v in mv["variables"]:
            out.write(f"  {v['name']} = {v['value']}\n")
