"""The ConfigMgr step types the product knows by name, as data.

Each entry says how a step type is written in task sequence XML (``type=`` and the ``<step>`` or
``<subtasksequence>`` element), which ``<defaultVarList>`` properties it has (property name, the
task sequence variable that carries it, whether ConfigMgr marks it ``hidden``), what each property
means in YAML, which properties are secrets, and how the console builds the step's ``<action>``
command line. The settings models and the XML codec are both generated from this table, so a
property is described once.

Where the names come from:

* Checked against the real console exports in the project's corpus (``shared/corpus``): every
  property the corpus shows of RunCommandLine, RunPowerShellScript, SetVariable,
  SetDynamicVariables, Restart, FormatAndPartitionDisk, ApplyOperatingSystemImage,
  ApplyWindowsSettings, ApplyNetworkSettings, AutoApplyDrivers, InstallApplication,
  InstallSoftwareUpdates, SetupWindowsAndConfigMgr, DownloadPackageContent, UpgradeOperatingSystem,
  EnableBitLocker, DisableBitLocker, PreProvisionBitLocker, PrepareConfigMgrClient,
  PrepareWindowsForCapture, CaptureOperatingSystemImage, RunTaskSequence and CheckReadiness. Those
  pairs, flags and text forms are ground truth and win over any documentation.
* Checked against Microsoft's "SMS_TaskSequence_<X>Action server WMI class" reference
  (learn.microsoft.com/…/configmgr/develop/reference/osd/): JoinDomainOrWorkgroup,
  ConnectToNetworkFolder, ApplyDriverPackage, InstallPackage, CaptureUserState, RestoreUserState,
  RequestStateStore, ReleaseStateStore, CaptureOperatingSystemImage, PrepareWindowsForCapture, and the
  properties the corpus does not show of ApplyOperatingSystemImage (the destination),
  AutoApplyDrivers (CategoryList), InstallSoftwareUpdates (UseCache), EnableBitLocker (PIN) and
  DisableBitLocker (TargetDrive). ``tests/test_steptypes_docs.py`` pins what was read there.

How the reference maps to XML, as the corpus confirms for the classes it covers: the variable is the
property's ``VariableName`` qualifier, else the class's ``VariablePrefix`` followed by the property
name, else the property name itself; a property the action's ``CommandLine`` takes as an argument
(``CommandLineArg(n)``) is written ``hidden="true"``; a ``Secret`` property (a password, a PIN) is a
secret here but is *not* written hidden (ApplyNetworkSettings' DomainPassword, ApplyWindowsSettings'
AdminPassword and CaptureOperatingSystemImage's CapturePassword are not in any export); ``%%`` in a
``CommandLine`` qualifier is one ``%`` in the action. A few properties the reference lists without a
``VariableName`` are named after the variable the console's own command line uses (Recurse:
``%OSDRecurse%``, ShutdownPreparedOs: ``%OSDShutdownPreparedOs%``); the step's ``Timeout`` is not a
property but the step's ``timeout`` attribute (seconds), inherited from SMS_TaskSequence_Action.

A property read with another variable name, flag or text form is kept verbatim in the step's
``properties`` list instead, so nothing read is ever changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["str", "bool", "int", "codes", "package", "secret", "script", "rules", "app", "textsecret"]


@dataclass(frozen=True, slots=True)
class Prop:
    """One ``<variable name=… property=…>`` of a step."""

    field: str  # camelCase name in YAML settings
    property: str  # XML property attribute
    variable: str  # XML name attribute (the task sequence variable)
    kind: Kind = "str"
    hidden: bool = False
    doc: str = ""
    true_text: str = "true"
    false_text: str = "false"
    required: bool = False
    #: the values the console offers; YAML is held to them, XML with another spelling stays a raw property
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListProp:
    """An indexed family such as ``Partitions0Type``, ``Partitions1Type``… shown as a YAML list."""

    field: str
    prefix: str  # property prefix, e.g. "Partitions"
    variable_prefix: str  # variable prefix, e.g. "OSDPartitions"
    items: tuple[Prop, ...]  # Prop.property / Prop.variable hold the suffix ("Type")
    counts: tuple[Prop, ...] = ()  # properties holding the number of items
    doc: str = ""


@dataclass(frozen=True, slots=True)
class StepType:
    name: str  # YAML type
    xml_type: str
    title: str  # as the console's Add menu names it
    props: tuple[Prop, ...] = ()
    lists: tuple[ListProp, ...] = ()
    run_in: str | None = "WinPEandFullOS"
    success_codes: str = "0"
    element: str = "step"
    action: str | Callable[[Mapping[str, str]], str] = ""
    deploys_os: bool = False  # applies an OS image or partitions a disk: high-risk material
    doc: str = ""
    extra_fields: tuple[str, ...] = field(default=())

    def prop(self, field_name: str) -> Prop | None:
        for p in self.props:
            if p.field == field_name:
                return p
        return None


def _bool_flag(value: str | None) -> str:
    return "True" if (value or "").lower() == "true" else "False"


def _run_command_line_action(p: Mapping[str, str]) -> str:
    return f"smsswd.exe /run:{p.get('PackageID', '')} {p.get('CommandLine', '')}"


def _set_variable_action(p: Mapping[str, str]) -> str:
    hidden = _bool_flag(p.get("DoNotShowVariableValue"))
    value = "" if hidden == "True" else p.get("VariableValue", "")
    return f'tsenv.exe "{p.get("VariableName", "")}={value}" /hiddenflag:{hidden}'


def _reboot_action(p: Mapping[str, str]) -> str:
    target = p.get("Target", "")
    return f"smsboot.exe /target:{'WinPE' if target == 'WinPE' else 'HD'}"


def _apply_os_target(p: Mapping[str, str]) -> str:
    """``<?6: /target:%6,%7><?8: /target:%8><?9: /target:%%%9%%>`` of the class's CommandLine qualifier."""
    target = ""
    if p.get("DestinationDisk", "") != "":
        target += f" /target:{p['DestinationDisk']},{p.get('DestinationPartition', '')}"
    if p.get("DestinationLogicalDrive"):
        target += f" /target:{p['DestinationLogicalDrive']}"
    if p.get("DestinationVariable"):
        target += f" /target:%{p['DestinationVariable']}%"
    return target


def _apply_os_action(p: Mapping[str, str]) -> str:
    if p.get("ImagePackageID"):
        net = _bool_flag(p.get("RunFromNet"))
        return f"OSDApplyOS.exe /image:{p['ImagePackageID']},%OSDImageIndex%{_apply_os_target(p)} /runfromnet:{net}"
    action = f"OSDApplyOS.exe /install:{p.get('InstallPackageID', '')},%OSDInstallEditionIndex%"
    if p.get("ConfigFilePackage"):
        action += f' "/config:{p["ConfigFilePackage"]},%OSDConfigFileName%"'
    return action + _apply_os_target(p) + f" /runfromnet:{_bool_flag(p.get('RunFromNet'))}"


def _install_application_action(p: Mapping[str, str]) -> str:
    apps = p.get("ApplicationName", "")
    base = p.get("BaseVariableName", "")
    cont = _bool_flag(p.get("ContinueOnInstallError"))
    return f"smsappinstall.exe /app:{apps} /basevar:{base} /continueOnError:{cont}"


def _enable_bitlocker_action(p: Mapping[str, str]) -> str:
    action = (
        f"OSDBitLocker.exe /enable  /wait:{_bool_flag(p.get('WaitForEncryption'))} "
        f"/mode:{p.get('Mode', 'TPM')} /pwd:{p.get('CreateRecoveryPassword', 'AD')}"
    )
    if "EncryptFullDisk" in p:
        action += f" /full:{_bool_flag(p.get('EncryptFullDisk'))}"
    return action


def _disable_bitlocker_action(p: Mapping[str, str]) -> str:
    """``OSDBitLocker.exe /disable <?1: /drive:%1>``: the corpus shows the trailing space without a drive."""
    action = "OSDBitLocker.exe /disable "
    if p.get("TargetDrive"):
        action += f" /drive:{p['TargetDrive']}"
    return action


def _install_package_action(p: Mapping[str, str]) -> str:
    """``smsswd.exe /pkg:%1 /install /basevar:%3 /continueOnError:%4``; an unset argument stays empty."""
    cont = _bool_flag(p["ContinueOnInstallError"]) if "ContinueOnInstallError" in p else ""
    return (f"smsswd.exe /pkg:{p.get('PackageID', '')} /install /basevar:{p.get('BaseVariableName', '')} "
            f"/continueOnError:{cont}")


def _apply_driver_package_action(p: Mapping[str, str]) -> str:
    """The console's command line since version 1706 (Microsoft KB 4096313 shows it in smsts.log).

    The WMI reference gives ``osddriverclient.exe /install:%1 <?2:"/bootcritical:…">/unsigned:…``; the
    boot-critical argument is written only when a mass storage driver is chosen (BootCriticalDriverID).
    """
    action = f"osddriverclient.exe /install:{p.get('DriverPackageID', '')} "
    if p.get("BootCriticalDriverID"):
        action += ('"/bootcritical:%OSDApplyDriverBootCriticalContentUniqueID%,%OSDApplyDriverBootCriticalINFFile%,'
                   '%OSDApplyDriverBootCriticalHardwareComponent%,%OSDApplyDriverBootCriticalID%" ')
    return action + "/unsigned:%OSDAllowUnsignedDriver% /recurse:%OSDRecurse%"


def _request_state_store_action(p: Mapping[str, str]) -> str:
    return f"osdsmpclient.exe /{p.get('RequestType', '')}"


_RUN_AS = (
    Prop("runAsUser", "RunAsUser", "_SMSTSRunCommandLineAsUser", "bool", doc="Run this step as another account."),
    Prop("userName", "SMSTSRunCommandLineUserName", "SMSTSRunCommandLineUserName", doc="Run-as account."),
    Prop("userPassword", "SMSTSRunCommandLineUserPassword", "SMSTSRunCommandLineUserPassword", "secret",
         doc="Run-as password: a valueFrom reference, never plaintext."),
    Prop("loadProfile", "LoadProfile", "LoadProfile", "bool"),
)

_PARTITION_ITEMS = (
    Prop("type", "Type", "Type", doc="Primary, Extended, Logical, Recovery, EFI or MSR.",
         choices=("Primary", "Extended", "Logical", "Recovery", "EFI", "MSR")),
    Prop("fileSystem", "FileSystem", "FileSystem", doc="NTFS, FAT32 or none."),
    Prop("bootable", "Bootable", "Bootable", "bool"),
    Prop("quickFormat", "QuickFormat", "QuickFormat", "bool"),
    Prop("volumeName", "VolumeName", "VolumeName"),
    Prop("size", "Size", "Size", "int"),
    Prop("sizeUnits", "SizeUnits", "SizeUnits", doc="MB, GB or Percent of remaining space (newer consoles write %).",
         choices=("MB", "GB", "Percent", "%")),
    Prop("volumeLetterVariable", "VolumeLetterVariable", "VolumeLetterVariable",
         doc="Task sequence variable that receives the drive letter."),
    Prop("assignVolumeLetter", "AssignVolumeLetter", "AssignVolumeLetter", "bool"),
)

STEP_TYPES: tuple[StepType, ...] = (
    StepType(
        "RunCommandLine", "SMS_TaskSequence_RunCommandLineAction", "Run Command Line",
        props=(
            Prop("commandLine", "CommandLine", "CommandLine", hidden=True, required=True),
            Prop("package", "PackageID", "PackageID", "package", doc="Package whose content is the working folder."),
            Prop("workingDirectory", "WorkingDirectory", "WorkingDirectory"),
            Prop("disableWow64Redirection", "DisableWow64Redirection", "SMSTSDisableWow64Redirection", "bool"),
            Prop("outputVariableName", "OutputVariableName", "SMSTSRunCommandLineOutputVariableName"),
            Prop("successCodes", "SuccessCodes", "SuccessCodes", "codes", hidden=True),
            *_RUN_AS,
        ),
        success_codes="0 3010", action=_run_command_line_action,
    ),
    StepType(
        "RunPowerShellScript", "SMS_TaskSequence_RunPowerShellScriptAction", "Run PowerShell Script",
        props=(
            Prop("script", "SourceScript", "OSDRunPowerShellScriptSourceScript", "script",
                 doc="Script text; stored by ConfigMgr as base64 of UTF-16LE."),
            Prop("package", "PackageID", "OSDRunPowerShellScriptPackageID", "package"),
            Prop("scriptName", "ScriptName", "OSDRunPowerShellScriptScriptName"),
            Prop("parameters", "Parameters", "OSDRunPowerShellScriptParameters"),
            Prop("executionPolicy", "ExecutionPolicy", "OSDRunPowerShellScriptExecutionPolicy",
                 doc="AllSigned, Undefined or Bypass.", choices=("AllSigned", "Undefined", "Bypass")),
            Prop("outputVariableName", "OutputVariableName", "OSDRunPowerShellScriptOutputVariableName"),
            Prop("successCodes", "SuccessCodes", "OSDRunPowerShellScriptSuccessCodes", "codes", hidden=True),
            Prop("workingDirectory", "WorkingDirectory", "SMSTSRunPowerShellWorkingDirectory"),
            Prop("runAsUser", "RunAsUser", "_SMSTSRunPowerShellAsUser", "bool"),
            Prop("userName", "UserName", "SMSTSRunPowerShellUserName"),
            Prop("userPassword", "UserPassword", "SMSTSRunPowerShellUserPassword", "secret",
                 doc="Run-as password: a valueFrom reference, never plaintext."),
        ),
        success_codes="0 3010", action="OSDRunPowerShellScript.exe",
    ),
    StepType(
        "SetVariable", "SMS_TaskSequence_SetVariableAction", "Set Task Sequence Variable",
        props=(
            Prop("variableName", "VariableName", "VariableName", hidden=True, required=True),
            Prop("value", "VariableValue", "VariableValue", "textsecret", hidden=True,
                 doc="The value; with doNotShowValue it is a secret and must be a valueFrom reference."),
            Prop("doNotShowValue", "DoNotShowVariableValue", "DoNotShowVariableValue", "bool", hidden=True,
                 doc="Hide the value in logs; the value then is a secret (valueFrom)."),
        ),
        action=_set_variable_action,
    ),
    StepType(
        "SetDynamicVariables", "SMS_TaskSequence_SetDynamicVariablesAction", "Set Dynamic Variables",
        props=(Prop("rules", "Rules", "OSDSetDynamicVariablesRules", "rules"),),
        action="OSDSetDynamicVariables.exe",
    ),
    StepType(
        "Restart", "SMS_TaskSequence_RebootAction", "Restart Computer",
        props=(
            Prop("target", "Target", "SMSRebootTarget", hidden=True,
                 doc="WinPE (the boot image) or HD (the installed default operating system).",
                 choices=("WinPE", "HD")),
            Prop("message", "Message", "SMSRebootMessage"),
            Prop("messageTimeout", "MessageTimeout", "SMSRebootTimeout", "int"),
        ),
        action=_reboot_action,
    ),
    StepType(
        "FormatAndPartitionDisk", "SMS_TaskSequence_PartitionDiskAction", "Format and Partition Disk",
        props=(
            Prop("diskNumber", "DiskIndex", "OSDDiskIndex", "int"),
            Prop("diskType", "DiskType", "OSDDiskType", doc="Basic or Dynamic.", choices=("Basic", "Dynamic")),
            Prop("partitionStyle", "PartitionStyle", "OSDPartitionStyle", doc="GPT or MBR.", choices=("GPT", "MBR")),
            Prop("gptBootDisk", "GPTBootDisk", "OSDGPTBootDisk", "bool"),
            Prop("diskpartBiosCompatibilityMode", "DiskpartBiosCompatibilityMode",
                 "OSDDiskpartBiosCompatibilityMode", "bool"),
        ),
        lists=(
            ListProp("partitions", "Partitions", "OSDPartitions", _PARTITION_ITEMS,
                     counts=(Prop("", "Partitions", "OSDPartitions"),)),
        ),
        run_in="WinPE", action="osddiskpart.exe", deploys_os=True,
    ),
    StepType(
        "ApplyOperatingSystemImage", "SMS_TaskSequence_ApplyOperatingSystemAction", "Apply Operating System",
        props=(
            Prop("image", "ImagePackageID", "ImagePackageID", "package", hidden=True,
                 doc="Operating system image package."),
            Prop("index", "ImageIndex", "OSDImageIndex", "int"),
            Prop("installPackage", "InstallPackageID", "InstallPackageID", "package", hidden=True,
                 doc="Operating system upgrade package (install from original source)."),
            Prop("editionIndex", "InstallEditionIndex", "OSDInstallEditionIndex", "int"),
            Prop("unattendPackage", "ConfigFilePackage", "ConfigFilePackage", "package", hidden=True),
            Prop("unattendFile", "ConfigFileName", "OSDConfigFileName"),
            Prop("runFromNet", "RunFromNet", "RunFromNet", "bool", hidden=True),
            Prop("destinationDisk", "DestinationDisk", "DestinationDisk", "int", hidden=True,
                 doc="Apply to this disk (0-99), on destinationPartition; leave the destination unset for the "
                     "next available partition."),
            Prop("destinationPartition", "DestinationPartition", "DestinationPartition", "int", hidden=True,
                 doc="Partition (1-99) of destinationDisk."),
            Prop("destinationDrive", "DestinationLogicalDrive", "DestinationLogicalDrive", hidden=True,
                 doc="Apply to this logical drive letter, as Windows PE assigns it (C:)."),
            Prop("destinationVariable", "DestinationVariable", "DestinationVariable", hidden=True,
                 doc="Apply to the drive letter held by this task sequence variable (e.g. OSDisk, set by "
                     "Format and Partition Disk)."),
        ),
        run_in="WinPE", action=_apply_os_action, deploys_os=True,
    ),
    StepType(
        "ApplyWindowsSettings", "SMS_TaskSequence_ApplyWindowsSettingsAction", "Apply Windows Settings",
        props=(
            Prop("registeredUserName", "RegisteredUserName", "OSDRegisteredUserName"),
            Prop("registeredOrgName", "RegisteredOrgName", "OSDRegisteredOrgName"),
            Prop("productKey", "ProductKey", "OSDProductKey", "secret"),
            Prop("serverLicenseConnectionLimit", "ServerLicenseConnectionLimit",
                 "OSDServerLicenseConnectionLimit", "int"),
            Prop("randomAdminPassword", "RandomAdminPassword", "OSDRandomAdminPassword", "bool"),
            Prop("adminPassword", "AdminPassword", "OSDLocalAdminPassword", "secret"),
            Prop("timeZone", "TimeZone", "OSDTimeZone"),
            Prop("computerName", "ComputerName", "OSDComputerName"),
            Prop("inputLocale", "InputLocale", "OSDWindowsSettingsInputLocale"),
            Prop("systemLocale", "SystemLocale", "OSDWindowsSettingsSystemLocale"),
            Prop("uiLanguage", "UILanguage", "OSDWindowsSettingsUILanguage"),
            Prop("uiLanguageFallback", "UILanguageFallback", "OSDWindowsSettingsUILanguageFallback"),
            Prop("userLocale", "UserLocale", "OSDWindowsSettingsUserLocale"),
        ),
        run_in="WinPE", action="osdwinsettings.exe /config",
    ),
    StepType(
        "ApplyNetworkSettings", "SMS_TaskSequence_ApplyNetworkSettingsAction", "Apply Network Settings",
        props=(
            Prop("joinType", "NetworkJoinType", "OSDNetworkJoinType", "int", doc="0 domain, 1 workgroup."),
            Prop("domain", "DomainName", "OSDDomainName"),
            Prop("organizationalUnit", "DomainOUName", "OSDDomainOUName"),
            Prop("account", "DomainUsername", "OSDJoinAccount"),
            Prop("password", "DomainPassword", "OSDJoinPassword", "secret"),
            Prop("workgroup", "WorkgroupName", "OSDWorkgroupName"),
            Prop("enableTcpIpFiltering", "EnableTCPIPFiltering", "OSDEnableTCPIPFiltering", "bool", hidden=True),
            Prop("adapterCount", "NumAdapters", "OSDAdapterCount", "int", hidden=True),
            Prop("adapters", "Adapters", "OSDAdapter"),
        ),
        run_in="WinPE", action="osdnetsettings.exe configure",
    ),
    StepType(
        "ApplyDriverPackage", "SMS_TaskSequence_ApplyDriverPackageAction", "Apply Driver Package",
        props=(
            Prop("driverPackage", "DriverPackageID", "OSDApplyDriverDriverPackageID", "package", hidden=True,
                 required=True, doc="The driver package whose drivers are made available to Windows setup."),
            Prop("recurse", "Recurse", "OSDRecurse", "bool",
                 doc="Install the driver package by running DISM with /recurse (version 1706 and later)."),
            Prop("unsignedDrivers", "UnsignedDriver", "OSDAllowUnsignedDriver", "bool",
                 doc="Allow unsigned drivers where Windows allows it (ignored by current Windows versions)."),
            Prop("massStorageDriver", "BootCriticalDriverID", "OSDApplyDriverBootCriticalDriverID", hidden=True,
                 doc="CI_UniqueID of the mass storage driver to install before setup (pre-Vista Windows only)."),
            Prop("bootCriticalContentId", "BootCriticalContentUniqueID", "OSDApplyDriverBootCriticalContentUniqueID",
                 doc="Content unique ID of that mass storage driver."),
            Prop("bootCriticalInfFile", "BootCriticalINFFile", "OSDApplyDriverBootCriticalINFFile",
                 doc="INF file of that mass storage driver."),
            Prop("bootCriticalHardwareComponent", "BootCriticalHardwareComponent",
                 "OSDApplyDriverBootCriticalHardwareComponent", doc="Hardware component; scsi."),
            Prop("bootCriticalId", "BootCriticalID", "OSDApplyDriverBootCriticalID",
                 doc="The console's Model: the boot-critical ID from the scsi section of txtsetup.oem."),
        ),
        run_in="WinPE", action=_apply_driver_package_action,
    ),
    StepType(
        "AutoApplyDrivers", "SMS_TaskSequence_AutoApplyAction", "Auto Apply Drivers",
        props=(
            Prop("bestMatch", "BestMatch", "OSDAutoApplyDriverBestMatch", "bool"),
            Prop("unsignedDrivers", "UnsignedDriver", "OSDAllowUnsignedDriver", "bool"),
            Prop("categories", "CategoryList", "OSDAutoApplyDriverCategoryList",
                 doc="Unique IDs of the driver categories to limit the search to."),
        ),
        run_in="WinPE",
        action="osddriverclient.exe /auto /bestmatch:%OSDAutoApplyDriverBestMatch% "
               "/unsigned:%OSDAllowUnsignedDriver%",
    ),
    StepType(
        "InstallApplication", "SMS_TaskSequence_InstallApplicationAction", "Install Application",
        props=(
            Prop("applicationNames", "ApplicationName", "ApplicationName", hidden=True,
                 doc="Comma-separated application model names (ScopeId_…/Application_…)."),
            Prop("baseVariableName", "BaseVariableName", "BaseVariableName", hidden=True,
                 doc="Install the applications listed in <base>01, <base>02, … (dynamic list)."),
            Prop("continueOnInstallError", "ContinueOnInstallError", "ContinueOnInstallError", "bool", hidden=True),
            Prop("retryCount", "RetryCount", "RetryCount", "int", hidden=True),
            Prop("clearCache", "ClearCache", "OSDAppClearCache", "bool"),
        ),
        lists=(
            ListProp("applications", "AppInfo", "OSDApp", (
                Prop("name", "Name", "Name", doc="Application model name."),
                Prop("displayName", "DisplayName", "DisplayName"),
                Prop("description", "Description", "Description"),
            ), counts=(Prop("", "AppInfo", "OSDApp", hidden=True), Prop("", "NumApps", "OSDAppCount"))),
        ),
        action=_install_application_action,
    ),
    StepType(
        "InstallPackage", "SMS_TaskSequence_InstallSoftwareAction", "Install Package",
        props=(
            Prop("package", "PackageID", "PackageID", "package", hidden=True,
                 doc="The software package to install (a single package)."),
            Prop("program", "ProgramName", "_SMSSWDProgramName", doc="Program of that package to run."),
            Prop("baseVariableName", "BaseVariableName", "BaseVariableName", hidden=True,
                 doc="Install the packages listed in <base>001, <base>002, … as PackageID:Program (dynamic list)."),
            Prop("continueOnInstallError", "ContinueOnInstallError", "ContinueOnInstallError", "bool", hidden=True,
                 doc="With a dynamic list: go on with the other packages when one fails."),
            Prop("retryCount", "RetryCount", "RetryCount", "int", hidden=True,
                 doc="Retry this step if the computer unexpectedly restarts (1-5; the console's default is 2)."),
        ),
        run_in="FullOS", action=_install_package_action,
    ),
    StepType(
        "InstallSoftwareUpdates", "SMS_TaskSequence_InstallUpdateAction", "Install Software Updates",
        props=(
            Prop("target", "Target", "SMSInstallUpdateTarget", doc="Mandatory or All (also available).",
                 choices=("Mandatory", "All")),
            Prop("useCache", "UseCache", "SMSTSSoftwareUpdateScanUseCache", "bool"),
            Prop("retryCount", "RetryCount", "RetryCount", "int", hidden=True),
        ),
        run_in="FullOS", action="TSInstallSWUpdate.exe /target:%SMSInstallUpdateTarget%",
    ),
    StepType(
        "SetupWindowsAndConfigMgr", "SMS_TaskSequence_SetupWindowsAndSMSAction", "Setup Windows and ConfigMgr",
        props=(
            Prop("clientPackage", "ClientPackageID", "_SMSClientPackageID", "package"),
            Prop("installProperties", "ClientInstallProperties", "SMSClientInstallProperties"),
        ),
        action="OSDSetupWindows.exe",
    ),
    StepType(
        "JoinDomainOrWorkgroup", "SMS_TaskSequence_JoinDomainWorkgroupAction", "Join Domain or Workgroup",
        props=(
            Prop("joinType", "Type", "OSDJoinType", "int", doc="0 domain, 1 workgroup."),
            Prop("domain", "DomainName", "OSDJoinDomainName", doc="Domain to join (joinType 0)."),
            Prop("organizationalUnit", "DomainOUName", "OSDJoinDomainOUName",
                 doc="LDAP path of the organizational unit for the computer account."),
            Prop("account", "DomainUsername", "OSDJoinAccount", doc="Account with permission to join: DOMAIN\\user."),
            Prop("password", "DomainPassword", "OSDJoinPassword", "secret",
                 doc="Password of that account: a valueFrom reference, never plaintext."),
            Prop("workgroup", "WorkgroupName", "OSDJoinWorkgroupName", doc="Workgroup to join (joinType 1)."),
            Prop("skipReboot", "SkipReboot", "OSDJoinSkipReboot", "bool",
                 doc="Do not restart after joining."),
        ),
        run_in="FullOS", action="osdjoin.exe /type:%OSDJoinType%",
    ),
    StepType(
        "ConnectToNetworkFolder", "SMS_TaskSequence_ConnectNetworkFolderAction", "Connect to Network Folder",
        props=(
            Prop("path", "Path", "SMSConnectNetworkFolderPath", doc="UNC path of the share: \\\\server\\share."),
            Prop("driveLetter", "DriveLetter", "SMSConnectNetworkFolderDriveLetter", doc="Drive letter to map."),
            Prop("account", "Username", "SMSConnectNetworkFolderAccount", doc="Account that connects to the share."),
            Prop("password", "Password", "SMSConnectNetworkFolderPassword", "secret",
                 doc="Password of that account: a valueFrom reference, never plaintext."),
        ),
        action="smsnetuse.exe %SMSConnectNetworkFolderPath%",
    ),
    StepType(
        "DownloadPackageContent", "SMS_TaskSequence_DownloadPackageContentAction", "Download Package Content",
        props=(
            Prop("packages", "DownloadPackages", "OSDDownloadDownloadPackages",
                 doc="Comma-separated package IDs, as ConfigMgr stores them."),
            Prop("destination", "DestinationLocationType", "OSDDownloadDestinationLocationType",
                 doc="TSCache, CCMCache or Custom.", choices=("TSCache", "CCMCache", "Custom")),
            Prop("customPath", "DestinationCustomPath", "OSDDownloadDestinationPath"),
            Prop("destinationVariable", "DestinationVariable", "OSDDownloadDestinationVariable"),
            Prop("continueOnError", "ContinueDownloadOnError", "OSDDownloadContinueDownloadOnError", "bool"),
        ),
        lists=(
            ListProp("packageInfo", "PackageInfo", "OSDPackage", (
                Prop("name", "Name", "Name"),
                Prop("packageId", "PackageId", "PackageId"),
                Prop("packageType", "PkgType", "PkgType", "int"),
                Prop("size", "Size", "Size", "int"),
            ), counts=(Prop("", "PackageInfo", "OSDPackage", hidden=True),
                       Prop("", "NumPackages", "OSDPackageCount"))),
        ),
        action="OsdDownloadContent.exe ",
    ),
    StepType(
        "UpgradeOperatingSystem", "SMS_TaskSequence_UpgradeOperatingSystemAction", "Upgrade Operating System",
        props=(
            Prop("upgradePackage", "InstallPackageID", "OSDUpgradeInstallPackageID", "package"),
            Prop("editionIndex", "InstallEditionIndex", "OSDUpgradeInstallEditionIndex", "int"),
            Prop("productKey", "OsProductKey", "OSDUpgradeOsProductKey", "secret"),
            Prop("stagedContent", "StagedContent", "OSDUpgradeStagedContent"),
            Prop("installPath", "InstallPath", "OSDUpgradeInstallPath"),
            Prop("preserveSettings", "PreserveSettings", "OSDUpgradePreserveSettings"),
            Prop("ignoreMessages", "IgnoreMessages", "OSDUpgradeIgnoreMessages", "bool"),
            Prop("scanOnly", "ScanOnly", "OSDUpgradeScanOnly", "bool"),
            Prop("dynamicUpdate", "DynamicUpdateSettings", "OSDUpgradeDynamicUpdateSettings"),
            Prop("featureUpdateName", "FeatureUpdateName", "OSDUpgradeFeatureUpdateName"),
            Prop("featureUpdateAssignmentId", "FeatureUpdateAssignmentId", "OSDFeatureUpdateAssignmentID"),
        ),
        run_in="FullOS", action="OSDUpgradeOS.exe ", deploys_os=True,
    ),
    StepType(
        "EnableBitLocker", "SMS_TaskSequence_EnableBitLockerAction", "Enable BitLocker",
        props=(
            Prop("mode", "Mode", "OSDBitLockerMode", hidden=True, doc="TPM, TPMAndPIN, TPMAndStartupKey, StartupKey."),
            Prop("pin", "PIN", "OSDBitLockerPIN", "secret"),
            Prop("createRecoveryPassword", "CreateRecoveryPassword", "OSDBitLockerCreateRecoveryPassword",
                 hidden=True, doc="AD (store in Active Directory) or none."),
            Prop("waitForEncryption", "WaitForEncryption", "OSDBitLockerWaitForEncryption", "bool", hidden=True),
            Prop("encryptFullDisk", "EncryptFullDisk", "OSDBitLockerEncryptFullDisk", "bool", hidden=True),
            Prop("encryptionMethod", "EncryptMethod", "OSDBitLockerEncryptMethod", "int", hidden=True),
            Prop("skipWhenNoValidTpm", "SkipWhenNoValidTPM", "OSDBitLockerSkipWhenNoValidTPM", "bool", hidden=True),
            Prop("targetDrive", "BdeTargetDriveLetter", "OSDBitLockerTargetDrive"),
            Prop("startupKeyDrive", "BdeKeyLocation", "OSDBitLockerStartupKeyDrive"),
            Prop("installMode", "BdeInstall", "OSDBitLockerMode"),
            Prop("recoveryPassword", "BdeRecoveryPassword", "OSDBitLockerCreateRecoveryPassword"),
        ),
        run_in="FullOS", action=_enable_bitlocker_action,
    ),
    StepType(
        "DisableBitLocker", "SMS_TaskSequence_DisableBitLockerAction", "Disable BitLocker",
        props=(
            Prop("rebootCount", "RebootCount", "OSDBitLockerRebootCount", "int",
                 doc="Number of restarts BitLocker stays disabled for (the console's default is 1)."),
            Prop("drive", "TargetDrive", "OSDBitLockerTargetDrive", hidden=True,
                 doc="Drive letter to disable BitLocker on; unset for the current operating system drive."),
        ),
        run_in="FullOS", action=_disable_bitlocker_action,
    ),
    StepType(
        "PreProvisionBitLocker", "SMS_TaskSequence_OfflineEnableBitLockerAction", "Pre-provision BitLocker",
        props=(
            Prop("encryptFullDisk", "EncryptFullDisk", "OSDBitLockerEncryptFullDisk", "bool", hidden=True),
            Prop("skipWhenTpmInvalid", "SkipWhenTPMInvalid", "OSDBitLockerSkipWhenTPMInvalid", "bool", hidden=True),
        ),
        run_in="WinPE",
        action=lambda p: (
            f"OSDOfflineBitlocker.exe /enable  /ignoretpm:{_bool_flag(p.get('SkipWhenTPMInvalid'))} "
            f"/full:{_bool_flag(p.get('EncryptFullDisk'))}"
        ),
    ),
    StepType(
        "CaptureUserState", "SMS_TaskSequence_CaptureUserStateAction", "Capture User State",
        props=(
            Prop("package", "UsmtPackageID", "_OSDMigrateUsmtPackageID", "package",
                 doc="Package holding the User State Migration Tool (USMT)."),
            Prop("mode", "Mode", "OSDMigrateMode",
                 doc="Simple (capture all user profiles by using standard options) or Advanced (customize how "
                     "user profiles are captured, with configFiles).", choices=("Simple", "Advanced")),
            Prop("configFiles", "ConfigFiles", "OSDMigrateConfigFiles",
                 doc="Advanced mode: the USMT configuration files, comma-separated (miguser.xml,migapps.xml)."),
            Prop("continueOnError", "ContinueOnLockedFiles", "OSDMigrateContinueOnLockedFiles", "bool",
                 doc="Continue if some files cannot be captured."),
            Prop("verbose", "EnableVerboseLogging", "OSDMigrateEnableVerboseLogging", "bool",
                 doc="Verbose USMT logging."),
            Prop("skipEncryptedFiles", "SkipEncryptedFiles", "OSDMigrateSkipEncryptedFiles", "bool",
                 doc="Skip files encrypted with EFS."),
            Prop("useHardLinks", "UseHardlinks", "_OSDMigrateUseHardlinks", "bool",
                 doc="Capture locally by using hard links instead of copying files."),
            Prop("offlineUserState", "OfflineUserState", "_OSDMigrateOfflineUserState", "bool",
                 doc="Capture in offline mode (Windows PE only)."),
            Prop("fileAccess", "FileAccess", "OSDMigrateFileAccess",
                 doc="Normal (copy by using file system access) or VSS (Volume Shadow Copy Services).",
                 choices=("Normal", "VSS")),
        ),
        run_in="FullOS",
        action="osdmigrateuserstate.exe /collect /continueOnError:%OSDMigrateContinueOnLockedFiles% "
               "/skipefs:%OSDMigrateSkipEncryptedFiles%",
    ),
    StepType(
        "RestoreUserState", "SMS_TaskSequence_RestoreUserStateAction", "Restore User State",
        props=(
            Prop("package", "UsmtRestorePackageID", "_OSDMigrateUsmtRestorePackageID", "package",
                 doc="Package holding the User State Migration Tool (USMT)."),
            Prop("mode", "Mode", "OSDMigrateMode",
                 doc="Simple (standard options) or Advanced (customize, with configFiles).",
                 choices=("Simple", "Advanced")),
            Prop("configFiles", "ConfigFiles", "OSDMigrateConfigFiles",
                 doc="Advanced mode: the USMT configuration files, comma-separated."),
            Prop("restoreLocalAccounts", "LocalAccounts", "OSDMigrateLocalAccounts", "bool",
                 doc="Restore local computer user profiles (needs localAccountPassword)."),
            Prop("localAccountPassword", "LocalAccountPassword", "OSDMigrateLocalAccountPassword", "secret",
                 doc="Password given to restored local accounts: a valueFrom reference, never plaintext."),
            Prop("continueOnError", "ContinueOnRestore", "OSDMigrateContinueOnRestore", "bool",
                 doc="Continue if some files cannot be restored."),
            Prop("verbose", "EnableVerboseLogging", "OSDMigrateEnableVerboseLogging", "bool",
                 doc="Verbose USMT logging."),
        ),
        run_in="FullOS", action="osdmigrateuserstate.exe /apply /continueOnError:%OSDMigrateContinueOnRestore%",
    ),
    StepType(
        "RequestStateStore", "SMS_TaskSequence_RequestStateStoreAction", "Request State Store",
        props=(
            Prop("stateStoreType", "RequestType", "OSDStateRequestType", hidden=True, required=True,
                 doc="capture (capture user state) or restore (restore user state).",
                 choices=("capture", "restore")),
            Prop("retryCount", "SMPRetryCount", "OSDStateSMPRetryCount", "int",
                 doc="Times to retry finding a state migration point (0-30)."),
            Prop("retryWait", "SMPRetryTime", "OSDStateSMPRetryTime", "int",
                 doc="Seconds to wait between those retries (0-600)."),
            Prop("fallbackToAccount", "FallbackToNAA", "OSDStateFallbackToNAA", "bool",
                 doc="Use the network access account when the computer account cannot connect."),
        ),
        run_in="FullOS", action=_request_state_store_action,
    ),
    StepType(
        "ReleaseStateStore", "SMS_TaskSequence_ReleaseStateStoreAction", "Release State Store",
        run_in="FullOS", action="osdsmpclient.exe /release",
    ),
    StepType(
        "PrepareConfigMgrClient", "SMS_TaskSequence_PrepareSMSClientAction", "Prepare ConfigMgr Client for Capture",
        run_in="FullOS", action="osdpreparesmsclient.exe",
    ),
    StepType(
        "PrepareWindowsForCapture", "SMS_TaskSequence_PrepareOSAction", "Prepare Windows for Capture",
        props=(
            Prop("buildMassStorageDriverList", "BuildStorageDriverList", "OSDBuildStorageDriverList", "bool",
                 doc="Build the mass storage driver list (Windows XP and Server 2003 only)."),
            Prop("keepActivation", "KeepActivation", "OSDKeepActivation", "bool",
                 doc="Do not reset the product activation flag."),
            Prop("shutdown", "ShutdownPreparedOs", "OSDShutdownPreparedOs", "bool",
                 doc="Shut the computer down after running this action."),
        ),
        run_in="FullOS",
        action="osdprepareos.exe /activate:%OSDKeepActivation% /bmsd:%OSDBuildStorageDriverList% "
               "/shutdown:%OSDShutdownPreparedOs%",
    ),
    StepType(
        "CaptureOperatingSystemImage", "SMS_TaskSequence_CaptureSystemImageAction", "Capture Operating System Image",
        props=(
            Prop("destination", "CaptureDestination", "OSDCaptureDestination",
                 doc="UNC path of the .wim file; an existing file is overwritten."),
            Prop("description", "ImageDescription", "OSDImageDescription"),
            Prop("version", "ImageVersion", "OSDImageVersion"),
            Prop("createdBy", "ImageCreator", "OSDImageCreator"),
            Prop("account", "CaptureUsername", "OSDCaptureAccount", doc="Account with write access: DOMAIN\\user."),
            Prop("password", "CapturePassword", "OSDCaptureAccountPassword", "secret",
                 doc="Password of that account: a valueFrom reference, never plaintext."),
        ),
        run_in="WinPE", action="osdcapturesystemimage.exe",
    ),
    StepType(
        "RunTaskSequence", "SMS_TaskSequence_SubTasksequence", "Run Task Sequence",
        props=(
            Prop("taskSequence", "TsPackageID", "OSDSubTasksequencePackageID", "package",
                 doc="The child task sequence: {id: PS100230} or {package: console name}."),
            Prop("taskSequenceName", "TsName", "OSDSubTasksequenceTsName"),
            Prop("referencedPackages", "TsReferencePackages", "OSDSubTasksequenceTsReferencePackages"),
            Prop("referencedApplications", "TsReferenceApplications", "OSDSubTasksequenceTsReferenceApplications"),
        ),
        run_in=None, element="subtasksequence", action="SubTasksequence.exe",
    ),
    StepType(
        "CheckReadiness", "SMS_TaskSequence_PrestartCheckAction", "Check Readiness",
        props=(
            Prop("checkMemory", "CheckMemory", "OSDCheckMemory", "bool"),
            Prop("memoryMB", "Memory", "OSDMemory", "int"),
            Prop("checkProcessorSpeed", "CheckProcessorSpeed", "OSDCheckProcessorSpeed", "bool"),
            Prop("processorSpeedMHz", "ProcessorSpeed", "OSDProcessorSpeed", "int"),
            Prop("checkFreeDiskSpace", "CheckFreeDiskSpace", "OSDCheckFreeDiskSpace", "bool"),
            Prop("freeDiskSpaceMB", "FreeDiskSpace", "OSDFreeDiskSpace", "int"),
            Prop("checkOsType", "CheckOSType", "OSDCheckOSType", "bool"),
            Prop("osType", "OSType", "OSDOSType"),
            Prop("checkOsArchitecture", "CheckOSArchitecture", "OSDCheckOSArchitecture", "bool"),
            Prop("osArchitecture", "OSArchitecture", "OSDOSArchitecture"),
            Prop("checkMinOsVersion", "CheckMinOSVersion", "OSDCheckMinOSVersion", "bool"),
            Prop("minOsVersion", "MinOSVersion", "OSDMinOSVersion"),
            Prop("checkMaxOsVersion", "CheckMaxOSVersion", "OSDCheckMaxOsVersion", "bool"),
            Prop("maxOsVersion", "MaxOSVersion", "OSDMaxOSVersion"),
            Prop("checkClientMinVersion", "CheckCMClientMinVersion", "OSDCheckCMClientMinVersion", "bool"),
            Prop("clientMinVersion", "CMClientMinVersion", "OSDCMClientMinVersion"),
            Prop("checkOsLanguage", "CheckOSLanguageID", "OSDCheckOSLanguageID", "bool"),
            Prop("osLanguageId", "OSLanguageID", "OSDOSLanguageID"),
            Prop("checkPowerState", "CheckPowerState", "OSDCheckPowerState", "bool"),
            Prop("checkNetworkConnected", "CheckNetworkConnected", "OSDCheckNetworkConnected", "bool"),
            Prop("checkNetworkWired", "CheckNetworkWired", "OSDCheckNetworkWired", "bool"),
            Prop("checkUefi", "CheckDeviceUEFI", "OSDCheckDeviceUEFI", "bool"),
            Prop("checkTpmEnabled", "CheckTpmEnabled", "OSDCheckDeviceTpmEnabled", "bool"),
            Prop("checkTpmActivated", "CheckTpmActivated", "OSDCheckDeviceTpmActivated", "bool"),
        ),
        action="OSDPrestartCheck.exe ",
    ),
)

BY_NAME: dict[str, StepType] = {t.name: t for t in STEP_TYPES}
BY_XML_TYPE: dict[str, StepType] = {t.xml_type: t for t in STEP_TYPES}

#: Elements a step is written as. ConfigMgr writes "Run Task Sequence" as <subtasksequence> and every other
#: step as <step>, but MDT templates write a child-sequence placeholder as a plain <step> of that type.
STEP_ELEMENTS = ("step", "subtasksequence")


def default_element(step_type: str | None) -> str:
    """The element a step of this type (YAML name or XML type) is written as unless it says otherwise."""
    known = BY_NAME.get(step_type or "") or BY_XML_TYPE.get(step_type or "")
    return known.element if known is not None else "step"

#: Property names that hold secrets in any step type, including ones only known generically (MDT).
SECRET_PROPERTY_HINTS = ("password", "productkey", "pin")


def is_secret_property(step_type: str | None, prop: str) -> bool:
    known = BY_XML_TYPE.get(step_type or "")
    if known is not None:
        for p in known.props:
            if p.property == prop:
                return p.kind == "secret"
    lowered = prop.lower()
    return any(h == lowered or (h != "pin" and h in lowered) for h in SECRET_PROPERTY_HINTS)
