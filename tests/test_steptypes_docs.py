"""The step types checked against Microsoft's WMI class reference stay as the reference says.

``reconciler/models/steptypes.py`` was written partly from memory; the step types the project's corpus
of real exports does not cover (or covers only in part) were checked against the
"SMS_TaskSequence_<X>Action server WMI class" pages. This file pins what was read there, so a later
edit cannot drift silently, and shows that a manifest step with every typed setting survives
manifest → XML → manifest with the documented variable names in the XML.

How a page is read (the corpus confirms each rule for the classes it covers): the variable is the
property's ``VariableName`` qualifier, else the class's ``VariablePrefix`` + the property name, else the
property name; a ``CommandLineArg(n)`` property is written ``hidden="true"``; a ``Secret`` property is a
secret but not hidden.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.convert import manifest_to_xml, xml_to_manifest
from reconciler.models import TaskSequence
from reconciler.models.steptypes import BY_NAME, STEP_TYPES
from reconciler.tsxml.xmltext import parse

REFERENCE = "https://learn.microsoft.com/en-us/mem/configmgr/develop/reference/osd/"
KB_4096313 = ("https://learn.microsoft.com/en-us/troubleshoot/mem/configmgr/os-deployment/"
              "apply-driver-package-task-error-80070057")

# (property, variable, kind, hidden) as the reference gives them; kind is the codec's: str, int, bool,
# package (a TaskSequencePackage qualifier) or secret (a Secret qualifier).
Row = tuple[str, str, str, bool]

DOCUMENTED: dict[str, tuple[str, tuple[Row, ...]]] = {
    "JoinDomainOrWorkgroup": ("sms_tasksequence_joindomainworkgroupaction-server-wmi-class", (
        ("Type", "OSDJoinType", "int", False),
        ("DomainName", "OSDJoinDomainName", "str", False),
        ("DomainOUName", "OSDJoinDomainOUName", "str", False),
        ("DomainUsername", "OSDJoinAccount", "str", False),
        ("DomainPassword", "OSDJoinPassword", "secret", False),
        ("WorkgroupName", "OSDJoinWorkgroupName", "str", False),
        ("SkipReboot", "OSDJoinSkipReboot", "bool", False),
    )),
    "ConnectToNetworkFolder": ("sms_tasksequence_connectnetworkfolderaction-server-wmi-class", (
        ("Path", "SMSConnectNetworkFolderPath", "str", False),
        ("DriveLetter", "SMSConnectNetworkFolderDriveLetter", "str", False),
        ("Username", "SMSConnectNetworkFolderAccount", "str", False),
        ("Password", "SMSConnectNetworkFolderPassword", "secret", False),
    )),
    "ApplyDriverPackage": ("sms_tasksequence_applydriverpackageaction-server-wmi-class", (
        ("DriverPackageID", "OSDApplyDriverDriverPackageID", "package", True),
        ("UnsignedDriver", "OSDAllowUnsignedDriver", "bool", False),
        ("BootCriticalDriverID", "OSDApplyDriverBootCriticalDriverID", "str", True),
        ("BootCriticalContentUniqueID", "OSDApplyDriverBootCriticalContentUniqueID", "str", False),
        ("BootCriticalINFFile", "OSDApplyDriverBootCriticalINFFile", "str", False),
        ("BootCriticalHardwareComponent", "OSDApplyDriverBootCriticalHardwareComponent", "str", False),
        ("BootCriticalID", "OSDApplyDriverBootCriticalID", "str", False),
    )),
    "InstallPackage": ("sms_tasksequence_installsoftwareaction-server-wmi-class", (
        ("PackageID", "PackageID", "package", True),
        ("ProgramName", "_SMSSWDProgramName", "str", False),
        ("BaseVariableName", "BaseVariableName", "str", True),
        ("ContinueOnInstallError", "ContinueOnInstallError", "bool", True),
    )),
    "CaptureUserState": ("sms_tasksequence_captureuserstateaction-server-wmi-class", (
        ("UsmtPackageID", "_OSDMigrateUsmtPackageID", "package", False),
        ("Mode", "OSDMigrateMode", "str", False),
        ("ConfigFiles", "OSDMigrateConfigFiles", "str", False),
        ("ContinueOnLockedFiles", "OSDMigrateContinueOnLockedFiles", "bool", False),
        ("EnableVerboseLogging", "OSDMigrateEnableVerboseLogging", "bool", False),
        ("SkipEncryptedFiles", "OSDMigrateSkipEncryptedFiles", "bool", False),
        ("UseHardlinks", "_OSDMigrateUseHardlinks", "bool", False),
        ("OfflineUserState", "_OSDMigrateOfflineUserState", "bool", False),
        ("FileAccess", "OSDMigrateFileAccess", "str", False),
    )),
    "RestoreUserState": ("sms_tasksequence_restoreuserstateaction-server-wmi-class", (
        ("UsmtRestorePackageID", "_OSDMigrateUsmtRestorePackageID", "package", False),
        ("Mode", "OSDMigrateMode", "str", False),
        ("ConfigFiles", "OSDMigrateConfigFiles", "str", False),
        ("LocalAccounts", "OSDMigrateLocalAccounts", "bool", False),
        ("LocalAccountPassword", "OSDMigrateLocalAccountPassword", "secret", False),
        ("ContinueOnRestore", "OSDMigrateContinueOnRestore", "bool", False),
        ("EnableVerboseLogging", "OSDMigrateEnableVerboseLogging", "bool", False),
    )),
    "RequestStateStore": ("sms_tasksequence_requeststatestoreaction-server-wmi-class", (
        ("RequestType", "OSDStateRequestType", "str", True),
        ("SMPRetryCount", "OSDStateSMPRetryCount", "int", False),
        ("SMPRetryTime", "OSDStateSMPRetryTime", "int", False),
        ("FallbackToNAA", "OSDStateFallbackToNAA", "bool", False),
    )),
    "ReleaseStateStore": ("sms_tasksequence_releasestatestoreaction-server-wmi-class", ()),
    "CaptureOperatingSystemImage": ("sms_tasksequence_capturesystemimageaction-server-wmi-class", (
        ("CaptureDestination", "OSDCaptureDestination", "str", False),
        ("CaptureUsername", "OSDCaptureAccount", "str", False),
        ("CapturePassword", "OSDCaptureAccountPassword", "secret", False),
        ("ImageCreator", "OSDImageCreator", "str", False),
        ("ImageDescription", "OSDImageDescription", "str", False),
        ("ImageVersion", "OSDImageVersion", "str", False),
    )),
    "PrepareWindowsForCapture": ("sms_tasksequence_prepareosaction-server-wmi-class", (
        ("BuildStorageDriverList", "OSDBuildStorageDriverList", "bool", False),
        ("KeepActivation", "OSDKeepActivation", "bool", False),
    )),
    "DisableBitLocker": ("sms_tasksequence_disablebitlockeraction-server-wmi-class", (
        ("RebootCount", "OSDBitLockerRebootCount", "int", False),
        ("TargetDrive", "OSDBitLockerTargetDrive", "str", True),
    )),
    "AutoApplyDrivers": ("sms_tasksequence_autoapplyaction-server-wmi-class", (
        ("BestMatch", "OSDAutoApplyDriverBestMatch", "bool", False),
        ("UnsignedDriver", "OSDAllowUnsignedDriver", "bool", False),
        ("CategoryList", "OSDAutoApplyDriverCategoryList", "str", False),
    )),
    "InstallSoftwareUpdates": ("sms_tasksequence_installupdateaction-server-wmi-class", (
        ("Target", "SMSInstallUpdateTarget", "str", False),
        ("UseCache", "SMSTSSoftwareUpdateScanUseCache", "bool", False),
        ("RetryCount", "RetryCount", "int", True),
    )),
    "ApplyOperatingSystemImage": ("sms_tasksequence_applyoperatingsystemaction-server-wmi-class", (
        ("ImagePackageID", "ImagePackageID", "package", True),
        ("ImageIndex", "OSDImageIndex", "int", False),
        ("InstallPackageID", "InstallPackageID", "package", True),
        ("InstallEditionIndex", "OSDInstallEditionIndex", "int", False),
        ("ConfigFilePackage", "ConfigFilePackage", "package", True),
        ("ConfigFileName", "OSDConfigFileName", "str", False),
        ("RunFromNet", "RunFromNet", "bool", True),
        ("DestinationDisk", "DestinationDisk", "int", True),
        ("DestinationPartition", "DestinationPartition", "int", True),
        ("DestinationLogicalDrive", "DestinationLogicalDrive", "str", True),
        ("DestinationVariable", "DestinationVariable", "str", True),
    )),
}

#: Properties the reference lists without a VariableName, or (RetryCount) does not list at all, whose
#: variable comes from what the console itself writes. Kept apart so nobody mistakes them for qualifiers.
FROM_THE_CONSOLE: dict[str, tuple[tuple[Row, str], ...]] = {
    "ApplyDriverPackage": (
        (("Recurse", "OSDRecurse", "bool", False),
         f"{KB_4096313}: the 1706+ command line is '… /unsigned:%OSDAllowUnsignedDriver% /recurse:%OSDRecurse%'"),
    ),
    "PrepareWindowsForCapture": (
        (("ShutdownPreparedOs", "OSDShutdownPreparedOs", "bool", False),
         "corpus: the console writes 'osdprepareos.exe … /shutdown:%OSDShutdownPreparedOs%'"),
    ),
    "InstallPackage": (
        (("RetryCount", "RetryCount", "int", True),
         "task-sequence-steps: 'Retry this step if computer unexpectedly restarts'; written as Install "
         "Application and Install Software Updates write it in the corpus"),
    ),
}


#: Single properties checked on the reference of a step type the corpus otherwise covers (the rest of
#: those tables is pinned by the corpus round trip in test_corpus.py).
DOCUMENTED_PROPERTIES: tuple[tuple[str, str, Row], ...] = (
    ("EnableBitLocker", "sms_tasksequence_enablebitlockeraction-server-wmi-class",
     ("PIN", "OSDBitLockerPIN", "secret", False)),
    ("RunPowerShellScript", "sms_tasksequence_runpowershellscriptaction-server-wmi-class",
     ("UserPassword", "SMSTSRunPowerShellUserPassword", "secret", False)),
)


def _rows(step: str) -> set[Row]:
    return {(p.property, p.variable, p.kind, p.hidden) for p in BY_NAME[step].props}


@pytest.mark.parametrize("step", sorted(DOCUMENTED))
def test_the_table_says_what_the_reference_says(step: str) -> None:
    _, documented = DOCUMENTED[step]
    extra = {row for row, _ in FROM_THE_CONSOLE.get(step, ())}
    assert _rows(step) == set(documented) | extra


@pytest.mark.parametrize(("step", "page", "row"), DOCUMENTED_PROPERTIES, ids=[r[0] for r in DOCUMENTED_PROPERTIES])
def test_single_properties_say_what_the_reference_says(step: str, page: str, row: Row) -> None:
    assert row in _rows(step), REFERENCE + page
    assert page == BY_NAME[step].xml_type.lower() + "-server-wmi-class"


@pytest.mark.parametrize("step", sorted(DOCUMENTED))
def test_the_reference_page_names_the_xml_type(step: str) -> None:
    page, _ = DOCUMENTED[step]
    assert page == BY_NAME[step].xml_type.lower() + "-server-wmi-class", REFERENCE + page


def test_no_step_type_takes_the_inherited_timeout_for_a_property() -> None:
    # SMS_TaskSequence_Action.Timeout is the step's own timeout="…" attribute (seconds), not a variable.
    assert [t.name for t in STEP_TYPES for p in t.props if p.property == "Timeout"] == []


def test_secrets_are_secret_but_not_hidden() -> None:
    for step, (_, rows) in DOCUMENTED.items():
        for prop, _variable, kind, hidden in rows:
            if kind == "secret":
                assert not hidden, (step, prop)


# -- manifest → XML → manifest -----------------------------------------------------------------

#: Every typed setting of each checked step type, in YAML shape. Secrets are references; the XML of a
#: conversion carries them empty, so they come back as "".
SETTINGS: dict[str, dict[str, Any]] = {
    "JoinDomainOrWorkgroup": {
        "joinType": 0, "domain": "corp.contoso.com",
        "organizationalUnit": "LDAP://OU=Workstations,DC=corp,DC=contoso,DC=com", "account": "CORP\\svc-join",
        "password": {"valueFrom": {"env": "JOIN_PASSWORD"}}, "workgroup": "WORKGROUP", "skipReboot": True,
    },
    "ConnectToNetworkFolder": {
        "path": "\\\\fs01.corp.contoso.com\\logs$", "driveLetter": "L:", "account": "CORP\\svc-logs",
        "password": {"valueFrom": {"file": "secrets/logs.txt"}},
    },
    "ApplyDriverPackage": {
        "driverPackage": {"id": "PS100050"}, "recurse": True, "unsignedDrivers": False,
        "massStorageDriver": "ScopeId_1/Driver_2", "bootCriticalContentId": "Content_3",
        "bootCriticalInfFile": "iastor.inf", "bootCriticalHardwareComponent": "scsi", "bootCriticalId": "iaStor",
    },
    "InstallPackage": {
        "package": {"id": "PS100060"}, "program": "Install", "baseVariableName": "PACKAGES",
        "continueOnInstallError": True, "retryCount": 2,
    },
    "CaptureUserState": {
        "package": {"id": "PS100070"}, "mode": "Advanced", "configFiles": "miguser.xml,migapps.xml",
        "continueOnError": True, "verbose": True, "skipEncryptedFiles": False, "useHardLinks": True,
        "offlineUserState": False, "fileAccess": "VSS",
    },
    "RestoreUserState": {
        "package": {"id": "PS100070"}, "mode": "Simple", "configFiles": "miguser.xml",
        "restoreLocalAccounts": True, "localAccountPassword": {"valueFrom": {"env": "LOCAL_ACCOUNT_PASSWORD"}},
        "continueOnError": True, "verbose": False,
    },
    "RequestStateStore": {"stateStoreType": "capture", "retryCount": 3, "retryWait": 60, "fallbackToAccount": True},
    "ReleaseStateStore": {},
    "CaptureOperatingSystemImage": {
        "destination": "\\\\cm01\\captures$\\reference.wim", "account": "CORP\\svc-capture",
        "password": {"valueFrom": {"env": "CAPTURE_PASSWORD"}}, "createdBy": "OSD team",
        "description": "Reference image", "version": "1.0",
    },
    "PrepareWindowsForCapture": {"buildMassStorageDriverList": False, "keepActivation": True, "shutdown": True},
    "DisableBitLocker": {"rebootCount": 2, "drive": "D:"},
    "AutoApplyDrivers": {"bestMatch": True, "unsignedDrivers": False, "categories": "DriverCategories:1234"},
    "InstallSoftwareUpdates": {"target": "All", "useCache": True, "retryCount": 2},
    "ApplyOperatingSystemImage": {
        "image": {"id": "PS100012"}, "index": 3, "installPackage": {"id": "PS100013"}, "editionIndex": 1,
        "unattendPackage": {"id": "PS100014"}, "unattendFile": "unattend.xml", "runFromNet": False,
        "destinationDisk": 0, "destinationPartition": 3, "destinationDrive": "C:", "destinationVariable": "OSDisk",
    },
}


def _manifest(step: dict[str, Any]) -> TaskSequence:
    return TaskSequence.model_validate({
        "apiVersion": "configmgr.gitops.io/v1alpha1", "kind": "TaskSequence", "metadata": {"name": "docs"},
        "spec": {"name": "Documented steps", "steps": [step]},
    })


def _xml(step: dict[str, Any]) -> str:
    return manifest_to_xml(_manifest(step), resolve=lambda ref: ref["id"])


def _step_element(xml: str) -> Any:
    return next(el for el in parse(xml).iter() if el.tag in ("step", "subtasksequence"))


def test_every_checked_step_type_has_settings_here() -> None:
    assert set(SETTINGS) == set(DOCUMENTED)
    for step, settings in SETTINGS.items():
        assert set(settings) == {p.field for p in BY_NAME[step].props}, step


@pytest.mark.parametrize("step", sorted(SETTINGS))
def test_manifest_to_xml_to_manifest_keeps_every_setting(step: str) -> None:
    node = {"name": f"{step} step", "type": step, "settings": SETTINGS[step]}
    xml = _xml(node)
    back = xml_to_manifest(xml).manifest["spec"]["steps"][0]
    secret_fields = {p.field for p in BY_NAME[step].props if p.kind == "secret"}
    expected = {k: ("" if k in secret_fields else v) for k, v in SETTINGS[step].items()}
    assert back.get("settings", {}) == expected
    assert "properties" not in back  # nothing fell back to a verbatim property
    assert "action" not in back  # the action read is the one the table generates
    assert _manifest(back).spec.steps == _manifest({**node, "settings": expected}).spec.steps


@pytest.mark.parametrize("step", sorted(SETTINGS))
def test_the_xml_carries_the_documented_variables(step: str) -> None:
    xml = _xml({"name": f"{step} step", "type": step, "settings": SETTINGS[step]})
    el = _step_element(xml)
    assert el.get("type") == BY_NAME[step].xml_type
    written = {(v.get("property"), v.get("name"), v.get("hidden") == "true") for v in el.iter("variable")}
    _, documented = DOCUMENTED[step]
    expected = {(prop, var, hidden) for prop, var, _, hidden in documented}
    expected |= {(prop, var, hidden) for (prop, var, _, hidden), _ in FROM_THE_CONSOLE.get(step, ())}
    assert written == expected


ACTIONS = [
    # (step type, settings, the <action> the console's CommandLine qualifier gives)
    ("JoinDomainOrWorkgroup", {"joinType": 1, "workgroup": "LAB"}, "osdjoin.exe /type:%OSDJoinType%"),
    ("ConnectToNetworkFolder", {"path": "\\\\fs01\\logs$", "driveLetter": "L:"},
     "smsnetuse.exe %SMSConnectNetworkFolderPath%"),
    ("ApplyDriverPackage", {"driverPackage": {"id": "PS100050"}},
     "osddriverclient.exe /install:PS100050 /unsigned:%OSDAllowUnsignedDriver% /recurse:%OSDRecurse%"),
    ("InstallPackage", {"package": {"id": "PS100060"}, "program": "Install"},
     "smsswd.exe /pkg:PS100060 /install /basevar: /continueOnError:"),
    ("InstallPackage", {"baseVariableName": "PACKAGES", "continueOnInstallError": True},
     "smsswd.exe /pkg: /install /basevar:PACKAGES /continueOnError:True"),
    ("CaptureUserState", {"package": {"id": "PS100070"}, "mode": "Simple"},
     "osdmigrateuserstate.exe /collect /continueOnError:%OSDMigrateContinueOnLockedFiles% "
     "/skipefs:%OSDMigrateSkipEncryptedFiles%"),
    ("RestoreUserState", {"package": {"id": "PS100070"}, "mode": "Simple"},
     "osdmigrateuserstate.exe /apply /continueOnError:%OSDMigrateContinueOnRestore%"),
    ("RequestStateStore", {"stateStoreType": "capture"}, "osdsmpclient.exe /capture"),
    ("RequestStateStore", {"stateStoreType": "restore"}, "osdsmpclient.exe /restore"),
    ("ReleaseStateStore", {}, "osdsmpclient.exe /release"),
    ("DisableBitLocker", {"rebootCount": 1}, "OSDBitLocker.exe /disable "),
    ("DisableBitLocker", {"drive": "D:"}, "OSDBitLocker.exe /disable  /drive:D:"),
    ("ApplyOperatingSystemImage", {"image": {"id": "PS100012"}, "index": 3, "destinationVariable": "OSDisk"},
     "OSDApplyOS.exe /image:PS100012,%OSDImageIndex% /target:%OSDisk% /runfromnet:False"),
    ("ApplyOperatingSystemImage", {"image": {"id": "PS100012"}, "index": 3, "destinationDisk": 0,
                                   "destinationPartition": 2},
     "OSDApplyOS.exe /image:PS100012,%OSDImageIndex% /target:0,2 /runfromnet:False"),
    ("ApplyOperatingSystemImage", {"image": {"id": "PS100012"}, "index": 1},
     "OSDApplyOS.exe /image:PS100012,%OSDImageIndex% /runfromnet:False"),
]


@pytest.mark.parametrize(("step", "settings", "action"), ACTIONS, ids=[f"{a[0]}-{i}" for i, a in enumerate(ACTIONS)])
def test_the_action_is_the_documented_command_line(step: str, settings: dict[str, Any], action: str) -> None:
    el = _step_element(_xml({"name": "Step", "type": step, "settings": settings}))
    assert el.findtext("action") == action


def test_an_install_package_step_as_the_console_writes_it_reads_as_typed_settings() -> None:
    # The shape of a console export of Install Package: PackageID hidden, the program in _SMSSWDProgramName.
    xml = (
        '<sequence version="3.10"><step type="SMS_TaskSequence_InstallSoftwareAction" name="Office" description="" '
        'runIn="FullOS" successCodeList="0" retryCount="0" runFromNet="false">'
        "<action>smsswd.exe /pkg:PS100061 /install /basevar: /continueOnError:</action><defaultVarList>"
        '<variable name="PackageID" property="PackageID" hidden="true">PS100061</variable>'
        '<variable name="_SMSSWDProgramName" property="ProgramName">Install</variable>'
        "</defaultVarList></step></sequence>"
    )
    step = xml_to_manifest(xml).manifest["spec"]["steps"][0]
    assert step == {"name": "Office", "type": "InstallPackage",
                    "settings": {"package": {"id": "PS100061"}, "program": "Install"}}
