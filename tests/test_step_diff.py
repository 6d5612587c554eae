"""Step trees are compared by identity: inserted, removed, moved and changed nodes, addressed by names."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.diff.changes import PATH_SEPARATOR, FieldChange, StepChange, StepOp
from reconciler.diff.normalize import ts_canonical
from reconciler.diff.steps import RAW_XML, diff_steps, iter_nodes, node_fields, sensitive_paths
from reconciler.plan.actions import FieldChange as PlanFieldChange
from reconciler.site.records import TaskSequenceRecord
from reconciler.tsxml.sequence import read_sequence, secret_marker, write_sequence
from tests.conftest import CORPUS

INSERTED, REMOVED, MOVED, CHANGED = StepOp.INSERTED, StepOp.REMOVED, StepOp.MOVED, StepOp.CHANGED
OSD = "Install Operating System"


# -- an interpreter of changes: what a reader of the plan would do to the old tree -------------------


def _list_at(tree: list[dict], loc: tuple[int, ...]) -> list[dict]:
    nodes = tree
    for k in loc[:-1]:
        nodes = nodes[k]["steps"]
    return nodes


def _node_at(tree: list[dict], loc: tuple[int, ...]) -> dict:
    return _list_at(tree, loc)[loc[-1]]


_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")


def _set_field(node: dict, path: str, value: Any) -> None:
    if path == "name":
        node["group" if "group" in node else "name"] = value
        return
    assert path != RAW_XML, "generated trees hold no verbatim XML"
    tokens = [(name, index) for name, index in _TOKEN.findall(path)]
    container: Any = node
    previous = None
    for n, (name, index) in enumerate(tokens):
        last = n == len(tokens) - 1
        if name:
            if last:
                if value is None:
                    container.pop(name, None)
                else:
                    container[name] = value
                return
            container = container[name]
            previous = name
        else:
            if previous == "properties":
                position = next(k for k, e in enumerate(container) if (e.get("property") or e.get("variable")) == index)
            else:
                position = int(index)
            if last:
                container[position] = value
                return
            container = container[position]
            previous = None


def rebuild(before: list[dict], changes: tuple[StepChange, ...], with_fields: bool = True
            ) -> tuple[list[dict], dict[int, tuple[int, ...]]]:
    """``before`` with the changes applied, and where each node that came from ``before`` was there."""
    tree = copy.deepcopy(before)
    origin = {id(node): loc for loc, node in iter_nodes(tree)}
    gone: list[tuple[list[dict], dict]] = []
    moved: dict[tuple[int, ...], dict] = {}
    for change in changes:
        if change.op is REMOVED:
            gone.append((_list_at(tree, change.location), _node_at(tree, change.location)))
        elif change.op is MOVED:
            assert change.previous_location is not None
            node = _node_at(tree, change.previous_location)
            gone.append((_list_at(tree, change.previous_location), node))
            moved[change.location] = node
    for siblings, node in gone:
        del siblings[next(k for k, n in enumerate(siblings) if n is node)]
    for change in sorted((c for c in changes if c.op in (INSERTED, MOVED)), key=lambda c: c.location):
        if change.op is MOVED:
            node = moved[change.location]
        else:
            assert change.node is not None
            node = copy.deepcopy(change.node)
            depth = len(change.location)
            inside = sorted((loc[depth:] for loc in moved if loc[:depth] == change.location and len(loc) > depth),
                            reverse=True)
            for rel in inside:  # moved in from elsewhere: placed from the old tree
                siblings = node["steps"]
                for k in rel[:-1]:
                    siblings = siblings[k]["steps"]
                del siblings[rel[-1]]
        _list_at(tree, change.location).insert(change.location[-1], node)
    if with_fields:
        for change in changes:
            if change.op in (CHANGED, MOVED):
                target = _node_at(tree, change.location)
                for field in change.fields:
                    _set_field(target, field.path, field.after)
    return tree, origin


def _own(node: dict) -> dict:
    return {k: v for k, v in node.items() if k != "steps"}


def assert_laws(before: list[dict], after: list[dict], changes: tuple[StepChange, ...]) -> None:
    rebuilt, _ = rebuild(before, changes)
    assert rebuilt == after
    # Every node without a change of its own (nor inside a new node) is its old self, unchanged.
    structure, origin = rebuild(before, changes, with_fields=False)
    touched = {c.location for c in changes if c.op is not REMOVED}
    new = [c.location for c in changes if c.op is INSERTED]
    for loc, node in iter_nodes(structure):
        if loc in touched or any(loc[:len(n)] == n for n in new):
            continue
        assert id(node) in origin, loc
        assert _own(_node_at(before, origin[id(node)])) == _own(_node_at(after, loc)), loc
    assert diff_steps(before, after) == changes  # deterministic


# -- the issue's scenario ------------------------------------------------------------------------------

BITLOCKER_CONDITION = {"variable": {"name": "OSDBitLocker", "operator": "notEquals", "value": "false"}}


def _install_tree() -> list[dict]:
    return [
        {"group": OSD, "description": "Runs in Windows PE", "steps": [
            {"name": "Restart in Windows PE", "type": "Restart",
             "condition": {"variable": {"name": "_SMSTSInWinPE", "operator": "equals", "value": "false"}},
             "settings": {"target": "WinPE", "messageTimeout": 60}},
            {"name": "Partition Disk 0 - UEFI", "type": "FormatAndPartitionDisk",
             "settings": {"diskNumber": 0, "partitionStyle": "GPT", "partitions": [
                 {"type": "EFI", "fileSystem": "FAT32", "size": 500, "sizeUnits": "MB"},
                 {"type": "Primary", "fileSystem": "NTFS", "size": 100, "sizeUnits": "Percent"}]}},
            {"name": "Apply Operating System", "type": "ApplyOperatingSystemImage",
             "settings": {"image": {"id": "PS100004"}, "index": 3}},
            {"name": "Enable BitLocker", "type": "EnableBitLocker", "continueOnError": True,
             "condition": copy.deepcopy(BITLOCKER_CONDITION),
             "settings": {"mode": "TPM", "createRecoveryPassword": "AD", "waitForEncryption": False}},
            {"name": "Setup Windows and ConfigMgr", "type": "SetupWindowsAndConfigMgr",
             "settings": {"clientPackage": {"id": "PS100005"}, "installProperties": "SMSCACHESIZE=25600"}},
        ]},
        {"group": "Configure", "steps": [
            {"name": "Install software updates", "type": "InstallSoftwareUpdates", "settings": {"target": "All"}},
            {"name": "Join the domain", "type": "JoinDomainOrWorkgroup",
             "settings": {"domain": "corp.example.com", "account": "CORP\\svc-join",
                          "password": {"valueFrom": {"env": "DOMAIN_JOIN_PASSWORD"}}}},
            {"name": "Restart Computer", "type": "Restart", "settings": {"target": "HD"}},
        ]},
    ]


TATTOO = {"name": "Set OSD tattoo variable", "type": "SetVariable",
          "settings": {"variableName": "OSDTattoo", "value": "2026-12"}}


def _issue_edit(tree: list[dict]) -> list[dict]:
    after = copy.deepcopy(tree)
    group = after[0]["steps"]
    group.insert(3, copy.deepcopy(TATTOO))
    group[4]["condition"] = {"variable": {"name": "OSDBitLocker", "operator": "equals", "value": "true"}}
    return after


def test_a_step_inserted_before_a_step_whose_condition_changed_is_one_insertion_and_one_change() -> None:
    before = _install_tree()
    after = _issue_edit(before)
    changes = diff_steps(before, after)
    assert changes == (
        StepChange(INSERTED, (OSD, "Set OSD tattoo variable"), False, "SetVariable",
                   f'after "Apply Operating System" in "{OSD}"', node=TATTOO, location=(0, 3)),
        StepChange(CHANGED, (OSD, "Enable BitLocker"), False, "EnableBitLocker",
                   f'after "Set OSD tattoo variable" in "{OSD}"',
                   fields=(FieldChange("condition.variable.operator", "notEquals", "equals"),
                           FieldChange("condition.variable.value", "false", "true")),
                   location=(0, 4)),
    )
    assert changes[1].display_path == "Install Operating System \u203a Enable BitLocker"
    assert PlanFieldChange is FieldChange  # the plan's actions carry the diff stage's field changes
    assert_laws(before, after, changes)


def test_the_issue_scenario_read_back_from_the_sites_xml_is_the_same_two_changes() -> None:
    def canonical(tree: list[dict]) -> list[dict]:
        xml = write_sequence({"steps": tree}, secrets=secret_marker)
        return ts_canonical(TaskSequenceRecord(id="PS100010", name="Windows 11", sequence=xml))["steps"]

    before, after = canonical(_install_tree()), canonical(_issue_edit(_install_tree()))
    changes = diff_steps(before, after, opaque_references=True)
    assert [(c.op, c.display_path, c.position) for c in changes] == [
        (INSERTED, "Install Operating System \u203a Set OSD tattoo variable",
         'after "Apply Operating System" in "Install Operating System"'),
        (CHANGED, "Install Operating System \u203a Enable BitLocker",
         'after "Set OSD tattoo variable" in "Install Operating System"'),
    ]
    assert [f.path for f in changes[1].fields] == ["condition.variable.operator", "condition.variable.value"]


# -- one kind of change at a time ----------------------------------------------------------------------


def test_a_removed_step_is_reported_where_it_was_with_its_content() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    removed = after[0]["steps"].pop(1)
    changes = diff_steps(before, after)
    assert changes == (StepChange(REMOVED, (OSD, "Partition Disk 0 - UEFI"), False, "FormatAndPartitionDisk",
                                  f'after "Restart in Windows PE" in "{OSD}"', node=removed, location=(0, 1)),)
    assert_laws(before, after, changes)


def test_a_removal_comes_before_an_insertion_at_the_same_place() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    after[1]["steps"][0] = {"name": "Install applications", "type": "InstallApplication"}
    changes = diff_steps(before, after)
    assert [(c.op, c.name, c.position) for c in changes] == [
        (REMOVED, "Install software updates", 'first in "Configure"'),
        (INSERTED, "Install applications", 'first in "Configure"'),
    ]
    assert_laws(before, after, changes)


def test_a_step_moved_within_its_group_is_one_move() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    steps = after[0]["steps"]
    steps.insert(0, steps.pop(3))  # Enable BitLocker first
    changes = diff_steps(before, after)
    assert len(changes) == 1
    change = changes[0]
    assert (change.op, change.display_path, change.position, change.previous) == (
        MOVED, "Install Operating System \u203a Enable BitLocker", f'first in "{OSD}"',
        f'after "Apply Operating System" in "{OSD}"')
    assert (change.location, change.previous_location, change.fields) == ((0, 0), (0, 3), ())
    assert_laws(before, after, changes)


def test_a_step_moved_to_another_group_and_edited_is_one_move_with_its_field_changes() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    step = after[0]["steps"].pop(3)
    step["disabled"] = True
    step["settings"]["mode"] = "TPMAndPIN"
    after[1]["steps"].insert(1, step)
    changes = diff_steps(before, after)
    assert changes == (StepChange(
        MOVED, ("Configure", "Enable BitLocker"), False, "EnableBitLocker",
        'after "Install software updates" in "Configure"', previous=f'after "Apply Operating System" in "{OSD}"',
        fields=(FieldChange("disabled", None, True), FieldChange("settings.mode", "TPM", "TPMAndPIN")),
        location=(1, 1), previous_location=(0, 3), previous_path=(OSD, "Enable BitLocker")),)
    assert_laws(before, after, changes)


def test_steps_wrapped_in_a_new_group_are_moved_into_it() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    steps = after[1]["steps"]
    after[1]["steps"] = [{"group": "Finish", "steps": steps[1:]}, steps[0]]
    changes = diff_steps(before, after)
    assert [(c.op, c.display_path, c.position) for c in changes] == [
        (INSERTED, "Configure \u203a Finish", 'first in "Configure"'),
        (MOVED, "Configure \u203a Finish \u203a Join the domain", 'first in "Configure \u203a Finish"'),
        (MOVED, "Configure \u203a Finish \u203a Restart Computer",
         'after "Join the domain" in "Configure \u203a Finish"'),
    ]
    assert_laws(before, after, changes)


def test_a_group_dissolved_into_its_parent_moves_its_steps_out() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    after[1:] = after[1]["steps"]
    changes = diff_steps(before, after)
    assert [(c.op, c.display_path) for c in changes] == [
        (REMOVED, "Configure"),
        (MOVED, "Install software updates"), (MOVED, "Join the domain"), (MOVED, "Restart Computer"),
    ]
    assert changes[1].position == f'after "{OSD}" at the top level'
    assert_laws(before, after, changes)


def test_duplicate_names_align_around_an_insert() -> None:
    restart = {"name": "Restart Computer", "type": "Restart", "settings": {"target": "HD"}}
    before = [dict(restart), {"name": "Install", "type": "InstallApplication"}, dict(restart)]
    new = {"name": "Restart Computer", "type": "Restart", "settings": {"target": "WinPE"}}
    after = [copy.deepcopy(new), *copy.deepcopy(before)]
    changes = diff_steps(before, after)
    assert [(c.op, c.location, c.position) for c in changes] == [(INSERTED, (0,), "first at the top level")]
    after = [*copy.deepcopy(before), copy.deepcopy(new)]
    changes = diff_steps(before, after)
    assert [(c.op, c.location, c.position) for c in changes] == [
        (INSERTED, (3,), 'after the 2nd "Restart Computer" at the top level')]
    assert_laws(before, after, changes)


def test_the_nth_duplicate_is_compared_with_the_nth() -> None:
    before = [{"name": "Restart Computer", "type": "Restart", "settings": {"messageTimeout": n}} for n in range(3)]
    after = copy.deepcopy(before)
    after[1]["settings"]["messageTimeout"] = 99
    del after[2]
    changes = diff_steps(before, after)
    assert [(c.op, c.location, c.fields) for c in changes] == [
        (CHANGED, (1,), (FieldChange("settings.messageTimeout", 1, 99),)),
        (REMOVED, (2,), ()),
    ]
    assert changes[1].position == 'after the 2nd "Restart Computer" at the top level'
    assert_laws(before, after, changes)


def test_a_renamed_group_with_the_same_children_is_one_name_change() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    after[1]["group"] = "Configure Windows"
    after[1]["steps"][0]["disabled"] = True
    changes = diff_steps(before, after)
    assert changes == (
        StepChange(CHANGED, ("Configure Windows",), True, None, f'after "{OSD}" at the top level',
                   fields=(FieldChange("name", "Configure", "Configure Windows"),), location=(1,)),
        StepChange(CHANGED, ("Configure Windows", "Install software updates"), False, "InstallSoftwareUpdates",
                   'first in "Configure Windows"', fields=(FieldChange("disabled", None, True),), location=(1, 0)),
    )
    assert_laws(before, after, changes)


def test_a_step_renamed_in_place_is_a_name_change_but_renamed_and_edited_is_replaced() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    after[0]["steps"][2]["name"] = "Apply Windows 11"
    changes = diff_steps(before, after)
    assert [(c.op, c.display_path, c.fields) for c in changes] == [
        (CHANGED, "Install Operating System \u203a Apply Windows 11",
         (FieldChange("name", "Apply Operating System", "Apply Windows 11"),))]
    assert_laws(before, after, changes)
    after[0]["steps"][2]["settings"]["index"] = 4
    changes = diff_steps(before, after)
    assert [(c.op, c.name) for c in changes] == [(REMOVED, "Apply Operating System"), (INSERTED, "Apply Windows 11")]
    assert_laws(before, after, changes)


def test_a_step_whose_type_changed_keeps_its_place() -> None:
    before = [{"name": "Tattoo", "type": "RunCommandLine", "settings": {"commandLine": "reg add HKLM\\X"}}]
    after = [{"name": "Tattoo", "type": "RunPowerShellScript", "settings": {"script": "New-Item HKLM:\\X"}}]
    changes = diff_steps(before, after)
    assert [(c.op, c.step_type) for c in changes] == [(CHANGED, "RunPowerShellScript")]
    assert changes[0].fields == (
        FieldChange("type", "RunCommandLine", "RunPowerShellScript"),
        FieldChange("settings.script", None, "New-Item HKLM:\\X"),
        FieldChange("settings.commandLine", "reg add HKLM\\X", None),
    )
    assert_laws(before, after, changes)


def test_changes_deep_in_nested_groups_are_addressed_by_every_groups_name() -> None:
    leaf = {"name": "Dell drivers", "type": "ApplyDriverPackage", "settings": {"unsignedDrivers": False}}
    before = [{"group": OSD, "steps": [{"group": "Drivers", "steps": [{"group": "Dell", "steps": [leaf]}]}]}]
    after = copy.deepcopy(before)
    after[0]["steps"][0]["steps"][0]["steps"][0]["settings"]["unsignedDrivers"] = True
    after[0]["steps"][0]["steps"][0]["disabled"] = True
    changes = diff_steps(before, after)
    assert [(c.op, c.display_path, c.position, [f.path for f in c.fields]) for c in changes] == [
        (CHANGED, "Install Operating System \u203a Drivers \u203a Dell",
         'first in "Install Operating System \u203a Drivers"', ["disabled"]),
        (CHANGED, "Install Operating System \u203a Drivers \u203a Dell \u203a Dell drivers",
         'first in "Install Operating System \u203a Drivers \u203a Dell"', ["settings.unsignedDrivers"]),
    ]
    assert_laws(before, after, changes)


def test_generic_steps_properties_are_addressed_by_property_name() -> None:
    gather = {"name": "Gather", "type": "BDD_Gather", "action": "cscript.exe ZTIGather.wsf",
              "properties": [{"property": "GatherLocalOnly", "value": "false"},
                             {"property": "RulesFile", "value": ""},
                             {"property": "AdminPassword", "valueFrom": {"env": "OSD_TS_GATHER_ADMINPASSWORD"}}]}
    before = [gather]
    after = copy.deepcopy(before)
    after[0]["properties"][0]["value"] = "true"
    after[0]["properties"][2]["valueFrom"] = {"env": "LOCAL_ADMIN"}
    changes = diff_steps(before, after)
    assert changes[0].fields == (
        FieldChange("properties[GatherLocalOnly].value", "false", "true"),
        FieldChange("properties[AdminPassword].valueFrom", {"env": "OSD_TS_GATHER_ADMINPASSWORD"},
                    {"env": "LOCAL_ADMIN"}, sensitive=True),
    )
    assert_laws(before, after, changes)
    hidden = copy.deepcopy(before)
    hidden[0]["properties"][2]["hidden"] = True
    assert diff_steps(before, hidden)[0].fields == (
        FieldChange("properties[AdminPassword].hidden", None, True, sensitive=True),)
    after[0]["properties"].append({"property": "Extra", "value": "1"})
    assert [f.path for f in diff_steps(before, after)[0].fields] == ["properties"]
    assert diff_steps(before, after)[0].fields[0].sensitive


def test_secret_settings_are_marked_sensitive_whatever_their_value() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    join = after[1]["steps"][1]["settings"]
    join["password"] = {"valueFrom": {"env": "OTHER"}}
    join["domain"] = "corp.contoso.com"
    fields = diff_steps(before, after)[0].fields
    assert fields == (FieldChange("settings.domain", "corp.example.com", "corp.contoso.com"),
                      FieldChange("settings.password", {"valueFrom": {"env": "DOMAIN_JOIN_PASSWORD"}},
                                  {"valueFrom": {"env": "OTHER"}}, sensitive=True))
    hidden = {"name": "Key", "type": "SetVariable", "settings": {"variableName": "K", "value": "",
                                                                  "doNotShowValue": True}}
    changed = copy.deepcopy(hidden)
    changed["settings"]["value"] = {"valueFrom": {"env": "K"}}
    assert node_fields(hidden, changed)[0].sensitive
    assert sensitive_paths(after[1]["steps"][1]) == {"settings.password"}
    rules = {"name": "Rules", "type": "SetDynamicVariables", "settings": {"rules": [
        {"variables": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"env": "B"}, "secret": True}]}]}}
    assert sensitive_paths(rules) == {"settings.rules[0].variables[1]"}
    edited = copy.deepcopy(rules)
    edited["settings"]["rules"][0]["variables"][0]["value"] = "2"
    edited["settings"]["rules"][0]["variables"][1]["valueFrom"] = {"env": "C"}
    assert [(f.path, f.sensitive) for f in node_fields(rules, edited)] == [
        ("settings.rules[0].variables[0].value", False), ("settings.rules[0].variables[1].valueFrom", True)]


def test_verbatim_xml_is_one_raw_xml_change_and_no_codec_key_reaches_a_path() -> None:
    step = {"name": "Custom", "type": "SMS_TaskSequence_CustomAction", "action": "custom.exe",
            "attributes": {"flags": "1"}, "extraElements": [{"tag": "note", "text": "a"}],
            "condition": {"variable": {"name": "X", "operator": "equals", "value": "1", "extra": {"Scope": "a"}}}}
    edited = copy.deepcopy(step)
    edited["extraElements"][0]["text"] = "b & c"
    edited["attributes"]["flags"] = "2"
    edited["condition"]["variable"]["extra"]["Scope"] = "b"
    fields = node_fields(step, edited)
    assert fields == (
        FieldChange("condition", step["condition"], edited["condition"]),
        FieldChange(RAW_XML, 'flags="1" <note>a</note>', 'flags="2" <note>b &amp; c</note>'),
    )
    assert not any(word in f.path for f in fields for word in ("extra", "attributes"))


def test_a_condition_whose_shape_changed_is_shown_whole() -> None:
    before = _install_tree()
    after = copy.deepcopy(before)
    new = [BITLOCKER_CONDITION, {"wmi": {"namespace": "root\\cimv2", "query": "SELECT * FROM Win32_Tpm"}}]
    after[0]["steps"][3]["condition"] = new
    assert diff_steps(before, after)[0].fields == (FieldChange("condition", BITLOCKER_CONDITION, new),)
    after[0]["steps"][3].pop("condition")
    assert diff_steps(before, after)[0].fields == (FieldChange("condition", BITLOCKER_CONDITION, None),)


def test_values_are_never_shortened() -> None:
    script = "\n".join(f"Write-Output {n}" for n in range(2000))
    before = [{"name": "Script", "type": "RunPowerShellScript", "settings": {"script": script}}]
    after = copy.deepcopy(before)
    after[0]["settings"]["script"] = script + "\nExit 0"
    (field,) = diff_steps(before, after)[0].fields
    assert (field.before, field.after) == (script, script + "\nExit 0")


def test_opaque_references_ignore_the_codecs_placeholder_names() -> None:
    def canonical(tree: list[dict]) -> list[dict]:
        return read_sequence(write_sequence({"steps": tree}, secrets=secret_marker)).spec["steps"]

    tree = _install_tree()
    renamed = copy.deepcopy(tree)
    renamed[1]["steps"][1]["name"] = "Join corp"  # the codec's placeholder follows the step's name
    before, after = canonical(tree), canonical(renamed)
    assert [f.path for f in diff_steps(before, after)[0].fields] != ["name"]
    assert [(c.op, [f.path for f in c.fields]) for c in diff_steps(before, after, opaque_references=True)] == [
        (CHANGED, ["name"])]
    emptied = copy.deepcopy(after)
    emptied[1]["steps"][1]["settings"]["password"] = ""
    assert diff_steps(after, emptied, opaque_references=True)[0].fields[0].sensitive


# -- laws on generated trees -----------------------------------------------------------------------------

STEP_NAMES = ["Restart Computer", "Run", "Gather", "Format"]
GROUP_NAMES = ["Install", "Drivers", "Configure"]
conditions = st.sampled_from([
    {"variable": {"name": "A", "operator": "equals", "value": "1"}},
    {"variable": {"name": "A", "operator": "equals", "value": "2"}},
    [{"variable": {"name": "A", "operator": "equals", "value": "1"}}, {"wmi": {"query": "SELECT 1"}}],
    {"or": [{"folder": {"path": "C:\\A"}}, {"wmi": {"query": "SELECT 2"}}]},
    {"or": [{"folder": {"path": "C:\\B"}}, {"wmi": {"query": "SELECT 2"}}]},
])


@st.composite
def steps(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["RunCommandLine", "Restart", "BDD_Gather"]))
    node: dict[str, Any] = {"name": draw(st.sampled_from(STEP_NAMES)), "type": kind}
    if draw(st.booleans()):
        node["disabled"] = True
    if draw(st.booleans()):
        node["condition"] = copy.deepcopy(draw(conditions))  # no two nodes share a value
    if kind == "RunCommandLine":
        node["settings"] = {"commandLine": draw(st.sampled_from(["a.cmd", "b.cmd"])),
                            "successCodes": list(draw(st.sampled_from([[0], [0, 3010]])))}
        if draw(st.booleans()):
            node["settings"]["userPassword"] = {"valueFrom": {"env": draw(st.sampled_from(["P1", "P2"]))}}
    elif kind == "Restart":
        node["settings"] = {"target": draw(st.sampled_from(["HD", "WinPE"]))}
    else:
        names = draw(st.lists(st.sampled_from(["Rules", "Local", "Password"]), unique=True, max_size=3))
        node["properties"] = [
            {"property": n, "value": draw(st.sampled_from(["0", "1"]))} if draw(st.booleans())
            else {"property": n, "valueFrom": {"env": draw(st.sampled_from(["E1", "E2"]))}} for n in names]
    return node


def groups(children: st.SearchStrategy[list[dict]]) -> st.SearchStrategy[dict]:
    def build(name: str, disabled: bool, kids: list[dict]) -> dict:
        node: dict[str, Any] = {"group": name}
        if disabled:
            node["disabled"] = True
        node["steps"] = kids
        return node

    return st.builds(build, st.sampled_from(GROUP_NAMES), st.booleans(), children)


trees = st.recursive(st.lists(steps(), max_size=5),
                     lambda inner: st.lists(st.one_of(steps(), groups(inner)), max_size=5), max_leaves=14)


@st.composite
def edited(draw: st.DrawFn, tree: list[dict]) -> list[dict]:
    out = copy.deepcopy(tree)
    for _ in range(draw(st.integers(0, 4))):
        nodes = list(iter_nodes(out))
        lists = [((), out)] + [(loc, n["steps"]) for loc, n in nodes if "group" in n]
        op = draw(st.sampled_from(["insert", "remove", "move", "edit", "rename"]))
        if op == "insert" or not nodes:
            _, target = draw(st.sampled_from(lists))
            target.insert(draw(st.integers(0, len(target))), draw(st.one_of(steps(), groups(st.just([])))))
            continue
        loc, node = draw(st.sampled_from(nodes))
        siblings = _list_at(out, loc)
        if op == "remove":
            del siblings[loc[-1]]
        elif op == "move":
            del siblings[loc[-1]]
            targets = [t for tloc, t in lists if tloc[:len(loc)] != loc]
            target = draw(st.sampled_from(targets))
            target.insert(draw(st.integers(0, len(target))), node)
        elif op == "edit":
            if "group" in node:
                node["disabled"] = not node.get("disabled")
            else:
                node.update({k: v for k, v in draw(steps()).items() if k not in ("name", "type")})
        else:
            node["group" if "group" in node else "name"] = draw(st.sampled_from(GROUP_NAMES + STEP_NAMES))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_changes_turn_the_old_tree_into_the_new_one(data: st.DataObject) -> None:
    before = data.draw(trees)
    after = data.draw(st.one_of(edited(before), trees))
    assert_laws(before, after, diff_steps(before, after))


@settings(max_examples=100, deadline=None)
@given(trees)
def test_a_tree_compared_with_itself_has_no_changes(tree: list[dict]) -> None:
    assert diff_steps(tree, tree) == ()
    assert diff_steps(tree, copy.deepcopy(tree)) == ()


# -- real sequences --------------------------------------------------------------------------------------

REAL = ["DeploymentResearch__HydrationKitWS2022__Source__Hydration__Control__CM01__ts.xml",
        "gwblok__garytown__OSD__CloudOSD__OSDCloudTaskSequence.zip__SMS_TaskSequencePackage__MEM000F8__object.xml",
        "microsoft__configmgr-hub__objects__TaskSequence__IPU_-_Citrix_VDA_and_Windows_10.xml"]


def _real(name: str) -> list[dict]:
    path = CORPUS / "ts-xml" / name
    if not path.exists():
        pytest.skip(f"corpus file {name} is not available")
    return read_sequence(path.read_bytes(), where=name).spec["steps"]


@pytest.mark.parametrize("name", REAL)
def test_a_real_sequence_edited_shows_exactly_the_edits(name: str) -> None:
    before = _real(name)
    after = copy.deepcopy(before)
    # The first group with a step after its first one that has no condition yet; the last group's last step.
    g_loc, group, at = next((loc, n, i) for loc, n in iter_nodes(after) if "group" in n
                            for i, child in enumerate(n["steps"]) if i and "condition" not in child)
    other = [n for _, n in iter_nodes(after) if "group" in n and n["steps"] and n is not group][-1]
    target = group["steps"][at]
    group["steps"].insert(at, copy.deepcopy(TATTOO))
    condition = {"variable": {"name": "OSDTattoo", "operator": "exists"}}
    target["condition"] = condition
    moving = other["steps"].pop(-1)
    after.append(moving)
    changes = diff_steps(before, after)
    group_path = tuple(_node_at(after, g_loc[:k])["group"] for k in range(1, len(g_loc) + 1))
    previous = group["steps"][at - 1]
    where = PATH_SEPARATOR.join(group_path)
    assert changes[:2] == (
        StepChange(INSERTED, (*group_path, TATTOO["name"]), False, "SetVariable",
                   f'after "{_name_of(previous)}" in "{where}"',
                   node=TATTOO, location=(*g_loc, at)),
        StepChange(CHANGED, (*group_path, target["name"]), False, target.get("type"),
                   f'after "{TATTOO["name"]}" in "{where}"',
                   fields=(FieldChange("condition", None, condition),), location=(*g_loc, at + 1)),
    )
    assert [(c.op, c.path, c.position) for c in changes[2:]] == [
        (MOVED, (moving.get("name") or moving.get("group"),), f'after "{_name_of(after[-2])}" at the top level')]
    assert_laws(before, after, changes)


def _name_of(node: dict) -> str:
    return node.get("name") or node["group"]


def test_two_different_real_sequences_turn_into_each_other() -> None:
    first, second = _real(REAL[0]), _real(REAL[1])
    assert_laws(first, second, diff_steps(first, second))
    assert_laws(second, first, diff_steps(second, first))
