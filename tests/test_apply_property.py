"""Laws of plan and apply on generated estates and generated console edits.

For any desired state and any live state reached by earlier applies and by changes made behind the
tool's back: after an apply, a new plan is empty, and applying that empty plan changes nothing.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply.executor import apply_plan
from reconciler.plan.planner import make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import ContentState
from reconciler.source.loader import load
from reconciler.state import StateStore

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
IMAGES = ["Windows 11 23H2 x64", "Windows 10 22H2 x64"]
PACKAGES = ["OSD Tools", "Configuration Manager Client Package"]
COLLECTIONS = ["OSD Pilot", "OSD Lab", "OSD Production Workstations"]

step = st.one_of(
    st.builds(lambda c, p: {"name": "Run", "type": "RunCommandLine",
                            "settings": {"commandLine": c, **({"package": {"package": p}} if p else {})}},
              st.sampled_from(["cmd /c echo 1", "cmd /c echo 2"]), st.none() | st.sampled_from(PACKAGES)),
    st.builds(lambda i, n: {"name": "Apply", "type": "ApplyOperatingSystemImage",
                            "settings": {"image": {"package": i}, "index": n}},
              st.sampled_from(IMAGES), st.integers(1, 3)),
    st.builds(lambda v: {"name": "Set", "type": "SetVariable", "settings": {"variableName": "X", "value": v}},
              st.sampled_from(["a", "b"])),
)

task_sequence = st.fixed_dictionaries({
    "enabled": st.booleans(),
    "folder": st.sampled_from([None, "OSD", "OSD/Test"]),
    "description": st.sampled_from(["", "one", "two"]),
    "steps": st.lists(step, min_size=1, max_size=3),
})

estate = st.fixed_dictionaries({
    "sequences": st.dictionaries(st.sampled_from(["ts-a", "ts-b", "ts-c"]), task_sequence, max_size=3),
    "deployments": st.lists(st.tuples(st.sampled_from(["ts-a", "ts-b", "ts-c"]), st.sampled_from(COLLECTIONS),
                                      st.sampled_from(["Available", "Required"]),
                                      st.sampled_from(["Never", "Always", "IfFailed"])), max_size=3),
    "content": st.dictionaries(st.sampled_from(["ts-a", "ts-b", "ts-c"]), st.sampled_from(["HQ DPs", "All DPs"]),
                               max_size=2),
    "variables": st.dictionaries(st.sampled_from(COLLECTIONS[:2]),
                                 st.tuples(st.integers(1, 9), st.sampled_from(["x", "y"]), st.booleans()), max_size=2),
})

edits = st.lists(st.sampled_from(["disable", "describe", "fail-content", "delete-deployment", "variables"]),
                 max_size=3)


def documents(spec: dict[str, Any]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name, ts in spec["sequences"].items():
        body = {"name": f"Sequence {name}", "type": "Custom", "enabled": ts["enabled"],
                "description": ts["description"], "steps": ts["steps"]}
        if ts["folder"]:
            body["folder"] = ts["folder"]
        docs.append({**HEAD, "kind": "TaskSequence", "metadata": {"name": name}, "spec": body})
    seen = set()
    for ts, collection, purpose, rerun in spec["deployments"]:
        if ts not in spec["sequences"] or (ts, collection) in seen:
            continue
        seen.add((ts, collection))
        name = f"{ts}-{collection.lower().replace(' ', '-')}"
        docs.append({**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": name},
                     "spec": {"taskSequence": ts, "collection": {"name": collection}, "purpose": purpose,
                              "schedule": {"rerun": rerun}}})
    for ts, group in spec["content"].items():
        if ts in spec["sequences"]:
            docs.append({**HEAD, "kind": "ContentDistribution", "metadata": {"name": f"{ts}-content"},
                         "spec": {"taskSequence": ts, "distributionPointGroups": [group]}})
    for collection, (priority, value, hidden) in spec["variables"].items():
        variables: list[dict[str, Any]] = [{"name": "OSDValue", "value": value}]
        if hidden:
            variables.append({"name": "OSDSecret", "hidden": True, "valueFrom": {"env": "OSD_PROPERTY_SECRET"}})
        docs.append({**HEAD, "kind": "CollectionVariables",
                     "metadata": {"name": collection.lower().replace(" ", "-")},
                     "spec": {"collection": {"name": collection}, "priority": priority, "variables": variables}})
    return docs


def write(folder: Path, spec: dict[str, Any]) -> None:
    for old in folder.glob("*.yaml"):
        old.unlink()
    (folder / "estate.yaml").write_text(yaml.safe_dump_all(documents(spec), sort_keys=False))


def console_edits(site: EmbeddedSite, chosen: list[str]) -> None:
    live = site.read()
    for edit in chosen:
        if edit == "disable" and live.task_sequences:
            site.set_task_sequence_enabled(sorted(live.task_sequences)[0], False)
        elif edit == "describe" and live.task_sequences:
            ts = live.task_sequences[sorted(live.task_sequences)[-1]]
            assert ts.id
            site.update_task_sequence(ts.id, replace(ts, description="changed in the console"))
        elif edit == "fail-content" and live.content:
            package, dp = sorted(live.content)[0]
            site.set_content_state(package, dp, ContentState.INSTALL_FAILED)
        elif edit == "delete-deployment" and live.deployments:
            site.delete_deployment(sorted(live.deployments)[0])
        elif edit == "variables" and live.collection_settings:
            cid = sorted(live.collection_settings)[0]
            site.set_collection_variables(cid, 9, [("OSDValue", "console", False)])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=estate, chosen=edits, second=estate, prune=st.booleans())
def test_apply_then_plan_is_empty_and_apply_is_idempotent(first: dict, chosen: list[str], second: dict,
                                                          prune: bool) -> None:
    os.environ["OSD_PROPERTY_SECRET"] = "property-secret"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifests = root / "manifests"
        manifests.mkdir()
        site = EmbeddedSite(root / "site.db")
        add_demo_inventory(site)
        state = StateStore(root / "state.db")
        try:
            write(manifests, first)
            result = apply_plan(make_plan(load(manifests), site.read(), state), site, state, manifests)
            assert result.ok, [(r.action.ref, r.message) for r in result.results if r.outcome != "applied"]
            console_edits(site, chosen)
            write(manifests, second)
            desired = load(manifests)
            assert not desired.findings
            plan = make_plan(desired, site.read(), state, prune=prune, max_delete=100)
            result = apply_plan(plan, site, state, manifests)
            assert result.ok, [(r.action.ref, r.message) for r in result.results if r.outcome != "applied"]
            after = make_plan(desired, site.read(), state, prune=prune, max_delete=100)
            assert after.actions == [] and after.blocked == []
            live_before = site.read()
            assert apply_plan(after, site, state, manifests).results == []
            assert site.read() == live_before
            names = [t.name for t in live_before.task_sequences.values()]
            assert len(names) == len(set(names))
        finally:
            site.close()
            state.close()
