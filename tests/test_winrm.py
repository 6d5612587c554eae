"""The WinRM path at the pypsrp boundary: the exact cmdlets and typed parameters sent, values only as parameters,
and the host's answers (output, error records, had_errors) turned into typed site errors.

Nothing here reaches a Windows host: :mod:`tests.winrm_fake` stands in for pypsrp's RunspacePool and the wire
under pypsrp's real PowerShell object.
"""

from __future__ import annotations

import logging
import re

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError

from reconciler.site.adminservice.winrm import (
    IMPORT_SEQUENCE_SCRIPT,
    LOCK_SCRIPT,
    SCRIPTS,
    SET_SCHEDULE_SCRIPT,
    SET_SEQUENCE_SCRIPT,
    ChangedSincePlan,
    VariableWrite,
    WinRMError,
    WinRMSession,
    WinRMUnavailable,
    connect,
    require,
    session_for,
)
from reconciler.site.errors import PermanentSiteError, TransientSiteError
from reconciler.site.options import Credentials, SiteOptions, WinRMAuth, WinRMOptions
from tests.winrm_fake import Answer, FakeHost, error_record

SECRET = "Pa$$w0rd-'\"; Remove-Item C:\\ -Recurse #"
HOSTILE_NAME = "Win11 \"; Remove-Item C:\\ -Recurse; $(Invoke-Expression 'whoami') `n"

#: System.Management.Automation.ErrorCategory values used below.
RESOURCE_BUSY, PERMISSION_DENIED, NOT_SPECIFIED = 19, 18, 0


def _session(host: FakeHost, **options: object) -> WinRMSession:
    winrm = WinRMOptions(host="cm01.corp.contoso.com",
                         credentials=Credentials("CORP\\svc-osd", "hunter2-winrm", username_from="test",
                                                 password_from="test"), **options)  # type: ignore[arg-type]
    return WinRMSession(winrm, site_code="PS1", provider_host="cm01.corp.contoso.com", connect=host.connect,
                        shell=host.shell)


def _opened(host: FakeHost) -> WinRMSession:
    host.answer("Get-PSDrive", Answer(output=["PS1"]))
    session = _session(host)
    session.open()
    host.invocations.clear()
    return session


def _only_parameters(host: FakeHost, *values: str) -> None:
    """Every command is a cmdlet name or one of the module's constant scripts; the values only ride as parameters."""
    for invocation in host.invocations:
        if invocation.is_script:
            assert any(invocation.command is s or invocation.command == s for s in SCRIPTS)
        else:
            assert re.fullmatch(r"[A-Z][A-Za-z]+-[A-Z][A-Za-z]+", invocation.command), invocation.command
        cmds = re.findall(r'<S N="Cmd">(.*?)</S>', invocation.xml, re.S)
        for value in values:
            escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            assert all(value not in cmd and escaped not in cmd for cmd in cmds)


def test_opening_imports_the_module_and_makes_the_cmsite_drive_when_missing() -> None:
    host = FakeHost()
    session = _session(host)
    session.open()
    assert [(i.command, i.parameters) for i in host.invocations] == [
        ("Import-Module", {"Name": "ConfigurationManager", "ErrorAction": "Stop"}),
        ("Get-PSDrive", {"Name": "PS1", "PSProvider": "CMSite", "ErrorAction": "SilentlyContinue"}),
        ("New-PSDrive", {"Name": "PS1", "PSProvider": "CMSite", "Root": "cm01.corp.contoso.com",
                         "ErrorAction": "Stop"}),
        ("Set-Location", {"Path": "PS1:\\", "ErrorAction": "Stop"}),
    ]
    assert host.opened == 1
    session.close()
    assert host.closed == 1


def test_an_existing_cmsite_drive_is_used_and_the_module_path_and_provider_come_from_the_options() -> None:
    host = FakeHost()
    host.answer("Get-PSDrive", Answer(output=["PS2"]))
    module = "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin\\ConfigurationManager.psd1"
    with _session(host, configuration_manager_module=module, site_code="PS2", provider_host="sms01") as session:
        assert session.namespace == "root\\SMS\\site_PS2"
    assert host.commands() == ["Import-Module", "Get-PSDrive", "Set-Location"]
    assert host.invocations[0].parameters["Name"] == module
    assert host.invocations[2].parameters["Path"] == "PS2:\\"


def test_a_missing_console_module_says_how_to_fix_it_and_closes_the_runspace() -> None:
    host = FakeHost()
    host.answer("Import-Module", Answer(errors=[error_record(
        "The specified module 'ConfigurationManager' was not loaded because no valid module file was found.",
        "Modules_ModuleNotFound,Microsoft.PowerShell.Commands.ImportModuleCommand", 12, "FileNotFoundException")]))
    with pytest.raises(WinRMError, match="configurationManagerModule") as caught:
        _session(host).open()
    assert "cm01.corp.contoso.com" in str(caught.value)
    assert host.closed == 1


def test_creating_a_sequence_runs_import_then_set_sequence_with_every_value_a_parameter() -> None:
    host = FakeHost()
    session = _opened(host)
    xml = f'<sequence version="3.10"><step name="{SECRET[:5]}" type="SMS_TaskSequence_SetVariableAction"/></sequence>'
    host.answer(IMPORT_SEQUENCE_SCRIPT, Answer(output=['SMS_TaskSequencePackage.PackageID="PS100012"']))
    package_id = session.import_sequence({"Name": HOSTILE_NAME, "Description": "d", "Duration": 120}, xml)
    assert package_id == "PS100012"
    [call] = host.invocations
    assert call.is_script and call.command is IMPORT_SEQUENCE_SCRIPT
    assert call.parameters == {"Namespace": "root\\SMS\\site_PS1",
                               "Properties": {"Name": HOSTILE_NAME, "Description": "d", "Duration": 120},
                               "SequenceXml": xml}
    _only_parameters(host, HOSTILE_NAME, xml)
    # typed on the wire: the properties a hashtable, the number an Int32
    assert "<T>System.Collections.Hashtable</T>" in call.xml and '<I32 N="Value">120</I32>' in call.xml


def test_an_answer_naming_no_package_is_a_clear_error() -> None:
    host = FakeHost()
    session = _opened(host)
    host.answer(IMPORT_SEQUENCE_SCRIPT, Answer(output=["nothing useful"]))
    with pytest.raises(WinRMError, match="names no PackageID"):
        session.import_sequence({"Name": "x"}, "<sequence/>")


def test_updating_a_sequence_sends_the_version_the_plan_saw() -> None:
    host = FakeHost()
    session = _opened(host)
    session.set_sequence("PS100012", "<sequence/>", sedo_version=7)
    [call] = host.invocations
    assert call.command is SET_SEQUENCE_SCRIPT
    assert call.parameters == {"Namespace": "root\\SMS\\site_PS1", "PackageId": "PS100012",
                               "SequenceXml": "<sequence/>", "ExpectedSedoVersion": "7"}


def test_a_sequence_edited_in_the_console_since_the_plan_is_a_conflict_to_plan_again() -> None:
    host = FakeHost()
    session = _opened(host)
    host.answer(SET_SEQUENCE_SCRIPT, Answer(errors=[error_record(
        "its SedoObjectVersion is now 9", "ReconcileChangedSincePlan", 20, "WriteErrorException")]))
    with pytest.raises(ChangedSincePlan, match=r"PS100012 changed in the console since the plan .*plan again"):
        session.set_sequence("PS100012", "<sequence/>", sedo_version=7)


@pytest.mark.parametrize("bad", ["PS1'; Remove-Item", "ps100012", "PS10001", 100012])
def test_an_id_that_is_not_one_is_refused_before_anything_is_sent(bad: object) -> None:
    host = FakeHost()
    session = _session(host)
    with pytest.raises(WinRMError, match="not valid; nothing was sent"):
        session.set_sequence(bad, "<sequence/>")  # type: ignore[arg-type]
    assert host.invocations == [] and host.opened == 0


def test_collection_variables_are_set_added_and_removed_by_cmdlet_with_the_masked_value_a_parameter() -> None:
    host = FakeHost()
    session = _opened(host)
    session.set_collection_variables("PS100021", [VariableWrite("OSDTimeZone", "W. Europe Standard Time"),
                                                  VariableWrite("OSDLocalAdminPassword", SECRET, masked=True)],
                                     existing=["osdtimezone", "OldVariable"])
    assert [(i.command, i.parameters) for i in host.invocations] == [
        ("Set-CMDeviceCollectionVariable", {"CollectionId": "PS100021", "VariableName": "osdtimezone",
                                            "NewVariableValue": "W. Europe Standard Time", "IsMask": False,
                                            "ErrorAction": "Stop"}),
        ("New-CMDeviceCollectionVariable", {"CollectionId": "PS100021", "VariableName": "OSDLocalAdminPassword",
                                            "Value": SECRET, "IsMask": True, "ErrorAction": "Stop"}),
        ("Remove-CMDeviceCollectionVariable", {"CollectionId": "PS100021", "VariableName": "OldVariable",
                                               "Force": True, "ErrorAction": "Stop"}),
    ]
    assert '<S N="N">IsMask</S><B N="V">true</B>' in host.invocations[1].xml
    _only_parameters(host, SECRET)


def test_computer_variables_use_the_device_cmdlets_parameter_names() -> None:
    host = FakeHost()
    session = _opened(host)
    session.set_device_variables(16777219, [VariableWrite("OSDComputerName", "LAB-PC-042"),
                                            VariableWrite("OSDJoinPassword", SECRET, masked=True)],
                                 existing=["OSDComputerName", "Stale"])
    assert [(i.command, i.parameters) for i in host.invocations] == [
        ("Set-CMDeviceVariable", {"ResourceId": "16777219", "VariableName": "OSDComputerName",
                                  "NewVariableValue": "LAB-PC-042", "IsMask": False, "ErrorAction": "Stop"}),
        ("New-CMDeviceVariable", {"DeviceId": "16777219", "VariableName": "OSDJoinPassword",
                                  "VariableValue": SECRET, "IsMask": True, "ErrorAction": "Stop"}),
        ("Remove-CMDeviceVariable", {"ResourceId": "16777219", "VariableName": "Stale", "Force": True,
                                     "ErrorAction": "Stop"}),
    ]


def test_a_host_error_echoing_a_masked_value_never_shows_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    host = FakeHost()
    session = _opened(host)
    host.answer("New-CMDeviceCollectionVariable", Answer(errors=[error_record(
        f"Cannot validate argument on parameter 'Value'. The argument \"{SECRET}\" is too long.",
        "ParameterArgumentValidationError,Microsoft.ConfigurationManagement.Cmdlets", 5, "ParameterBindingException")]))
    with pytest.raises(PermanentSiteError) as caught:
        session.set_collection_variables("PS100021", [VariableWrite("OSDLocalAdminPassword", SECRET, masked=True)],
                                         existing=[])
    assert SECRET not in str(caught.value) and "(sensitive)" in str(caught.value)
    assert "adding variable OSDLocalAdminPassword of collection PS100021" in str(caught.value)
    assert SECRET not in caplog.text
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.WARNING for name in ("pypsrp", "spnego"))


def test_built_in_collections_hold_no_variables() -> None:
    host = FakeHost()
    with pytest.raises(WinRMError, match="built in"):
        _session(host).set_collection_variables("SMS00001", [VariableWrite("A", "b")], existing=[])
    assert host.invocations == []


def test_a_schedule_is_written_whole_from_the_tokens_with_the_start_time_apart() -> None:
    host = FakeHost()
    session = _opened(host)
    session.set_assigned_schedule("PS120001", [
        {"@odata.type": "#AdminService.SMS_ST_RecurWeekly", "Day": 6, "ForNumberOfWeeks": 1, "IsGMT": True,
         "StartTime": "2026-12-05T20:00:00Z"},
        {"@odata.type": "#AdminService.SMS_ST_NonRecurring", "IsGMT": False, "StartTime": "2026-12-01T08:00:00Z"},
    ])
    [call] = host.invocations
    assert call.command is SET_SCHEDULE_SCRIPT
    assert call.parameters == {"Namespace": "root\\SMS\\site_PS1", "AdvertisementId": "PS120001", "Schedules": [
        {"Class": "SMS_ST_RecurWeekly", "Properties": {"Day": 6, "ForNumberOfWeeks": 1, "IsGMT": True},
         "StartTime": "2026-12-05T20:00:00Z"},
        {"Class": "SMS_ST_NonRecurring", "Properties": {"IsGMT": False}, "StartTime": "2026-12-01T08:00:00Z"},
    ]}


def test_a_schedule_token_of_another_class_is_refused_before_sending() -> None:
    host = FakeHost()
    session = _opened(host)
    with pytest.raises(WinRMError, match="SMS_ST_"):
        session.set_assigned_schedule("PS120001", [{"@odata.type": "#AdminService.Win32_Process", "Day": 1}])
    assert host.invocations == []


def test_prestaging_one_kind_writes_the_file_named() -> None:
    host = FakeHost()
    session = _opened(host)
    written = session.publish_prestage({"Package": ["PS100003", "PS100005"]}, "C:\\Prestage\\win11.pkgx",
                                       "dp01.corp.contoso.com")
    assert written == ["C:\\Prestage\\win11.pkgx"]
    assert [(i.command, i.parameters) for i in host.invocations] == [
        ("Publish-CMPrestageContent", {"PackageId": ["PS100003", "PS100005"], "FileName": "C:\\Prestage\\win11.pkgx",
                                       "DistributionPointName": "dp01.corp.contoso.com", "ErrorAction": "Stop"})]
    assert "<T>System.Object[]</T>" in host.invocations[0].xml  # the IDs travel as a String[] argument


def test_prestaging_several_kinds_writes_one_file_per_kind_beside_the_name() -> None:
    host = FakeHost()
    session = _opened(host)
    written = session.publish_prestage({"Package": ["PS100003"], "BootImage": ["PS100004"],
                                        "OperatingSystemImage": ["PS100006"]},
                                       "\\\\fs01\\prestage\\win11.pkgx", "dp01.corp.contoso.com")
    assert written == ["\\\\fs01\\prestage\\win11-Package.pkgx", "\\\\fs01\\prestage\\win11-BootImage.pkgx",
                       "\\\\fs01\\prestage\\win11-OperatingSystemImage.pkgx"]
    assert [(i.command, next(iter(i.parameters))) for i in host.invocations] == [
        ("Publish-CMPrestageContent", "PackageId"), ("Publish-CMPrestageContent", "BootImageId"),
        ("Publish-CMPrestageContent", "OperatingSystemImageId")]


@pytest.mark.parametrize("path", ["/tmp/win11.pkgx", "win11.pkgx", "C:\\Prestage\\win11.zip"])
def test_a_prestage_file_that_is_not_a_windows_path_is_refused(path: str) -> None:
    host = FakeHost()
    with pytest.raises(WinRMError, match="not a path on the WinRM host"):
        _session(host).publish_prestage({"Package": ["PS100003"]}, path, "dp01")
    assert host.invocations == []


def test_locks_run_the_lock_script_with_the_package_id_as_a_parameter() -> None:
    host = FakeHost()
    session = _opened(host)
    session.lock("PS100012")
    session.unlock("PS100012", force=True)
    assert [(i.command is LOCK_SCRIPT, i.parameters) for i in host.invocations] == [
        (True, {"PackageId": "PS100012"}), (True, {"PackageId": "PS100012", "Release": True, "Force": True})]


def test_a_busy_site_is_transient_and_a_refusal_permanent() -> None:
    host = FakeHost()
    session = _opened(host)
    host.answer(SET_SEQUENCE_SCRIPT, Answer(errors=[error_record("The SMS Provider is busy", "", RESOURCE_BUSY)]))
    with pytest.raises(TransientSiteError, match="ResourceBusy"):
        session.set_sequence("PS100012", "<sequence/>")
    host.answer(SET_SEQUENCE_SCRIPT, Answer(errors=[error_record("Access denied", "", PERMISSION_DENIED)]))
    with pytest.raises(PermanentSiteError, match="security scope"):
        session.set_sequence("PS100012", "<sequence/>")


def test_a_non_terminating_error_still_fails_the_operation() -> None:
    host = FakeHost()
    session = _opened(host)
    host.answer("Publish-CMPrestageContent", Answer(errors=[error_record("No content on dp01", "", NOT_SPECIFIED)],
                                                    terminating=False))
    with pytest.raises(WinRMError, match="No content on dp01"):
        session.publish_prestage({"Package": ["PS100003"]}, "C:\\p\\x.pkgx", "dp01")


def test_had_errors_without_a_record_is_still_a_failure() -> None:
    host = FakeHost()
    session = _opened(host)

    def failed(_: object) -> Answer:
        return Answer(failed=True)

    host.answer("Remove-CMDeviceVariable", failed)
    with pytest.raises(WinRMError, match="removing variable A of computer 5 failed without an error record"):
        session.set_device_variables(5, [], existing=["A"])


def test_a_long_host_message_is_cut_to_one_short_line() -> None:
    host = FakeHost()
    session = _opened(host)
    host.answer(SET_SEQUENCE_SCRIPT, Answer(errors=[error_record("x" * 100_000)]))
    with pytest.raises(WinRMError) as caught:
        session.set_sequence("PS100012", "<sequence/>")
    assert len(str(caught.value)) < 600 and "100,000 characters" in str(caught.value)


@pytest.mark.parametrize(("error", "kind", "words"), [
    (requests.exceptions.ConnectionError("refused"), TransientSiteError, "ConnectionError"),
    (requests.exceptions.ReadTimeout("slow"), TransientSiteError, "ReadTimeout"),
    (WinRMTransportError("http", 503, "busy"), TransientSiteError, "HTTP 503"),
    (WinRMTransportError("http", 401, ""), PermanentSiteError, "negotiate authentication as CORP\\svc-osd"),
    (AuthenticationError("Failed to authenticate the user CORP\\svc-osd with ntlm"), PermanentSiteError,
     "authentication as CORP\\svc-osd"),
    (requests.exceptions.SSLError("certificate verify failed"), PermanentSiteError, "site.winrm.caBundle"),
])
def test_connection_failures_are_typed(error: Exception, kind: type, words: str) -> None:
    host = FakeHost()
    host.open_error = error
    with pytest.raises(kind) as caught:
        _session(host).open()
    assert words in str(caught.value)
    assert "hunter2-winrm" not in str(caught.value)


def test_the_real_pool_is_built_from_the_options_without_connecting() -> None:
    options = WinRMOptions(host="cm01.corp.contoso.com", port=5986, auth=WinRMAuth.KERBEROS,
                           credentials=Credentials(), insecure=True)
    pool = connect(options)
    transport = pool.connection.transport  # type: ignore[attr-defined]
    assert (transport.server, transport.port, transport.ssl, transport.auth, transport.cert_validation) == (
        "cm01.corp.contoso.com", 5986, True, "kerberos", False)
    assert pool.shell.resource_uri.endswith("/Microsoft.PowerShell")  # type: ignore[attr-defined]


def test_a_site_without_winrm_names_what_needs_it() -> None:
    options = SiteOptions(url="https://cm01/AdminService")
    assert session_for(options, "PS1") is None
    with pytest.raises(WinRMUnavailable, match=r"SetSequence needs the WinRM path .*site\.winrm\.host"):
        require(None, "SetSequence", "https://cm01/AdminService")
    with_winrm = SiteOptions(url="https://cm01.corp/AdminService", winrm=WinRMOptions(host="cm02"))
    session = session_for(with_winrm, "PS1")
    assert session is not None and session.provider_host == "cm01.corp" and session.site_code == "PS1"
