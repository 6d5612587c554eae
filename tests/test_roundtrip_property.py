"""Laws of the codec on generated step trees: manifest → XML → manifest is the identity."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.models.tasksequence import TaskSequenceSpec
from reconciler.tsxml.sequence import read_sequence, write_sequence

text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), max_size=30)
name = text.filter(lambda s: 1 <= len(s) <= 100 and s.strip() == s and s != "")
variable = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True)

condition = st.recursive(
    st.one_of(
        st.builds(lambda n, o, v: {"variable": {"name": n, "operator": o, "value": v}},
                  variable, st.sampled_from(["equals", "notEquals", "like", "greater"]), text),
        st.builds(lambda q: {"wmi": {"namespace": "root\\cimv2", "query": q}}, text),
        st.builds(lambda p: {"folder": {"path": p}}, text.filter(bool)),
    ),
    lambda inner: st.one_of(
        st.builds(lambda c: {"and": c}, st.lists(inner, max_size=3)),
        st.builds(lambda c: {"or": c}, st.lists(inner, max_size=3)),
        st.builds(lambda c: {"not": c}, st.lists(inner, min_size=1, max_size=1)),
    ),
    max_leaves=5,
)


def _step(kind: str, step_name: str, desc: str, disabled: bool, coe: bool, cond: Any, s: dict) -> dict:
    node: dict[str, Any] = {"name": step_name, "type": kind, "settings": s}
    if desc:
        node["description"] = desc
    if disabled:
        node["disabled"] = True
    if coe:
        node["continueOnError"] = True
    if cond is not None:
        node["condition"] = cond
    return node


settings_for = {
    "RunCommandLine": st.builds(lambda c, w: {"commandLine": c, "disableWow64Redirection": w,
                                              "successCodes": [0, 3010]}, text.filter(bool), st.booleans()),
    "SetVariable": st.builds(lambda n, v: {"variableName": n, "value": v, "doNotShowValue": False}, variable, text),
    "Restart": st.builds(lambda t, m, s: {"target": t, "message": m, "messageTimeout": s},
                         st.sampled_from(["WinPE", "HD"]), text, st.integers(0, 999)),
    "RunPowerShellScript": st.builds(lambda s: {"script": s, "executionPolicy": "Bypass"},
                                     text.map(lambda s: s.replace("\r", ""))),
    "ApplyOperatingSystemImage": st.builds(lambda i: {"image": {"id": "PS100012"}, "index": i}, st.integers(1, 9)),
}

step = st.sampled_from(sorted(settings_for)).flatmap(
    lambda kind: st.builds(_step, st.just(kind), name, text, st.booleans(), st.booleans(),
                           st.none() | condition, settings_for[kind]))

tree = st.recursive(
    step,
    lambda inner: st.builds(
        lambda g, steps, cond: {"group": g, "steps": steps, **({"condition": cond} if cond else {})},
        name, st.lists(inner, max_size=4), st.none() | condition),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tree, min_size=1, max_size=4))
def test_manifest_to_xml_to_manifest_is_identity(steps: list[dict]) -> None:
    spec = TaskSequenceSpec.model_validate({"name": "Generated", "steps": steps})
    xml = write_sequence(spec.model_dump(by_alias=True, exclude_none=True, mode="json"))
    back = TaskSequenceSpec.model_validate({"name": "Generated", **read_sequence(xml).spec})
    assert back.steps == spec.steps
