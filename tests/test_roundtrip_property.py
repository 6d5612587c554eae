"""Laws of the codec on generated step trees: manifest → XML → manifest is the identity, and XML → manifest →
XML is the same sequence, whichever element (<step> or <subtasksequence>) each step was written as."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.models.steptypes import STEP_ELEMENTS
from reconciler.models.tasksequence import TaskSequenceSpec
from reconciler.tsxml.compare import canonical_sequence
from reconciler.tsxml.sequence import read_sequence, write_sequence
from reconciler.tsxml.xmltext import parse, serialize

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
    "RunTaskSequence": st.builds(lambda i: {"taskSequence": {"id": f"PS1{i:05d}"}}, st.integers(0, 99999)),
}

typed_step = st.sampled_from(sorted(settings_for)).flatmap(
    lambda kind: st.builds(_step, st.just(kind), name, text, st.booleans(), st.booleans(),
                           st.none() | condition, settings_for[kind]))


def _generic(step_type: str, element: str | None, step_name: str, action: str, value: str) -> dict:
    # The attributes every console writes on a step: a step under the element of its type is then as the
    # console would have written it.
    node: dict[str, Any] = {"name": step_name, "type": step_type, "action": action, "successCodes": [0],
                            "retryCount": 0, "runFromNet": False,
                            "properties": [{"property": "TsPackageID", "variable": "OSDSubTasksequencePackageID",
                                            "value": value}]}
    if element is not None:
        node["element"] = element
    return node


#: Generic steps under either element: the MDT placeholder (a <step> of the Run Task Sequence type) and
#: types ConfigMgr has no typed form for, written as <step> (the default) or <subtasksequence>.
package_id = st.integers(0, 99999).map(lambda i: f"PS1{i:05d}")
generic_step = st.one_of(
    st.builds(_generic, st.just("SMS_TaskSequence_SubTasksequence"), st.just("step"), name, text, package_id),
    st.builds(_generic, st.sampled_from(["BDD_Gather", "SMS_TaskSequence_FutureAction"]),
              st.sampled_from([None, "subtasksequence"]), name, text, package_id),
)

step = st.one_of(typed_step, generic_step)

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


def _with_elements(xml: str, elements: list[str]) -> str:
    """The same XML with each step written as the element drawn for it (both forms a real file may hold)."""
    root = parse(xml)
    steps = [el for el in root.iter() if el.tag in STEP_ELEMENTS]
    for el, element in zip(steps, elements, strict=False):
        el.tag = element
    return serialize(root)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tree, min_size=1, max_size=4), st.lists(st.sampled_from(STEP_ELEMENTS), max_size=40),
       st.sampled_from(["3.10", "3.00"]))
def test_xml_to_manifest_to_xml_is_the_same_sequence(steps: list[dict], elements: list[str], version: str) -> None:
    spec = TaskSequenceSpec.model_validate({"name": "Generated", "steps": steps, "xml": {"version": version}})
    xml = _with_elements(write_sequence(spec.model_dump(by_alias=True, exclude_none=True, mode="json")), elements)
    read = TaskSequenceSpec.model_validate({"name": "Generated", **read_sequence(xml).spec})
    again = write_sequence(read.model_dump(by_alias=True, exclude_none=True, mode="json"))
    assert canonical_sequence(again) == canonical_sequence(xml)
