"""The ConfigMgr step types the product knows by name, as data.

Each entry says how a step type is written in task sequence XML (``type=`` and the ``<step>`` or
``<subtasksequence>`` element), which ``<defaultVarList>`` properties it has (property name, the
task sequence variable that carries it, whether ConfigMgr marks it ``hidden``), what each property
means in YAML, which properties are secrets, and how the console builds the step's ``<action>``
command line. The settings models and the XML codec are both generated from this table, so a
property is described once.

Variable names and ``hidden`` flags are those current ConfigMgr consoles write (checked against the
real exports in the project's corpus). A property read with another variable name, flag or text form
is kept verbatim in the step's ``properties`` list instead, so nothing read is ever changed.
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


def _apply_os_action(p: Mapping[str, str]) -> str:
    if p.get("ImagePackageID"):
        net = _bool_flag(p.get("RunFromNet"))
        return f"OSDApplyOS.exe /image:{p['ImagePackageID']},%OSDImageIndex% /runfromnet:{net}"
    action = f"OSDApplyOS.exe /install:{p.get('InstallPackageID', '')},%OSDInstallEditionIndex%"
    if p.get("ConfigFilePackage"):
        action += f' "/config:{p["ConfigFilePackage"]},%OSDConfigFileName%"'
    return action + f" /runfromnet:{_bool_flag(p.get('RunFromNet'))}"


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


def _install_package_action(p: Mapping[str, str]) -> str:
    return f"smsswd.exe /pkg:{p.get('PackageID', '')} /install /basevar:{p.get('BaseVariableName', '')}"


_RUN_AS = (
    Prop("runAsUser", "RunAsUser", "_SMSTSRunCommandLineAsUser", "bool", doc="Run this step as another account."),
    Prop("userName", "SMSTSRunCommandLineUserName", "SMSTSRunCommandLineUserName", doc="Run-as account."),
    Prop("userPassword", "SMSTSRunCommandLineUserPassword", "SMSTSRunCommandLineUserPassword", "secret",
         doc="Run-as password: a valueFrom reference, never plaintext."),
    Prop("loadProfile", "LoadProfile", "LoadProfile", "bool"),
)

_PARTITION_ITEMS = (
    Prop("type", "Type", "Type", doc="Primary, Extended, Logical, Recovery, EFI or MSR."),
    Prop("fileSystem", "FileSystem", "FileSystem", doc="NTFS, FAT32 or none."),
    Prop("bootable", "Bootable", "Bootable", "bool"),
    Prop("quickFormat", "QuickFormat", "QuickFormat", "bool"),
    Prop("volumeName", "VolumeName", "VolumeName"),
    Prop("size", "Size", "Size", "int"),
    Prop("sizeUnits", "SizeUnits", "SizeUnits", doc="MB, GB or Percent of remaining space."),
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
            Prop("timeoutMinutes", "Timeout", "SMSTSRunCommandLineTimeout", "int"),
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
                 doc="AllSigned, Undefined or Bypass."),
            Prop("outputVariableName", "OutputVariableName", "OSDRunPowerShellScriptOutputVariableName"),
            Prop("successCodes", "SuccessCodes", "OSDRunPowerShellScriptSuccessCodes", "codes", hidden=True),
            Prop("workingDirectory", "WorkingDirectory", "SMSTSRunPowerShellWorkingDirectory"),
            Prop("timeoutMinutes", "Timeout", "SMSTSRunPowerShellTimeout", "int"),
            Prop("runAsUser", "RunAsUser", "_SMSTSRunPowerShellAsUser", "bool"),
            Prop("userName", "UserName", "SMSTSRunPowerShellUserName"),
            Prop("userPassword", "UserPassword", "SMSTSRunPowerShellUserPassword", "secret"),
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
                 doc="WinPE (the boot image) or HD (the installed default operating system)."),
            Prop("message", "Message", "SMSRebootMessage"),
            Prop("messageTimeout", "MessageTimeout", "SMSRebootTimeout", "int"),
        ),
        action=_reboot_action,
    ),
    StepType(
        "FormatAndPartitionDisk", "SMS_TaskSequence_PartitionDiskAction", "Format and Partition Disk",
        props=(
            Prop("diskNumber", "DiskIndex", "OSDDiskIndex", "int"),
            Prop("diskType", "DiskType", "OSDDiskType", doc="Basic or Dynamic."),
            Prop("partitionStyle", "PartitionStyle", "OSDPartitionStyle", doc="GPT or MBR."),
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
            Prop("destination", "DestinationDisk", "OSDDestinationDisk"),
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
            Prop("driverPackage", "DriverPackageID", "OSDApplyDriverDriverPackageID", "package", required=True),
            Prop("installDriversSeparately", "InstallDriverSeparately", "OSDInstallDriversSeparately", "bool"),
            Prop("unsignedDrivers", "UnsignedDriver", "OSDAllowUnsignedDriver", "bool"),
            Prop("massStorageDriver", "MassStorageDriver", "OSDApplyDriverMassStorageDriver"),
            Prop("massStorageModel", "MassStorageModel", "OSDApplyDriverMassStorageModel"),
            Prop("bootCriticalInfFile", "BootCriticalINFFile", "OSDApplyDriverBootCriticalINFFile"),
            Prop("bootCriticalHardwareComponent", "BootCriticalHardwareComponent",
                 "OSDApplyDriverBootCriticalHardwareComponent"),
            Prop("bootCriticalId", "BootCriticalID", "OSDApplyDriverBootCriticalID"),
        ),
        run_in="WinPE", action="osddriverclient.exe /install:%OSDApplyDriverDriverPackageID%",
    ),
    StepType(
        "AutoApplyDrivers", "SMS_TaskSequence_AutoApplyAction", "Auto Apply Drivers",
        props=(
            Prop("bestMatch", "BestMatch", "OSDAutoApplyDriverBestMatch", "bool"),
            Prop("unsignedDrivers", "UnsignedDriver", "OSDAllowUnsignedDriver", "bool"),
            Prop("categories", "DriverCategories", "OSDAutoApplyDriverCategoryList"),
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
            Prop("package", "PackageID", "PackageID", "package", hidden=True),
            Prop("program", "ProgramName", "ProgramName", hidden=True),
            Prop("baseVariableName", "BaseVariableName", "BaseVariableName", hidden=True),
            Prop("continueOnInstallError", "ContinueOnInstallError", "ContinueOnInstallError", "bool", hidden=True),
            Prop("retryCount", "RetryCount", "RetryCount", "int", hidden=True),
        ),
        action=_install_package_action,
    ),
    StepType(
        "InstallSoftwareUpdates", "SMS_TaskSequence_InstallUpdateAction", "Install Software Updates",
        props=(
            Prop("target", "Target", "SMSInstallUpdateTarget", doc="Mandatory or All (also available)."),
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
            Prop("domain", "DomainName", "OSDJoinDomainName"),
            Prop("organizationalUnit", "DomainOUName", "OSDJoinDomainOUName"),
            Prop("account", "DomainUsername", "OSDJoinAccount"),
            Prop("password", "DomainPassword", "OSDJoinPassword", "secret"),
            Prop("workgroup", "WorkgroupName", "OSDJoinWorkgroupName"),
            Prop("skipReboot", "SkipReboot", "OSDJoinSkipReboot", "bool"),
        ),
        run_in="FullOS", action="osdjoin.exe /domain",
    ),
    StepType(
        "ConnectToNetworkFolder", "SMS_TaskSequence_ConnectNetworkFolderAction", "Connect to Network Folder",
        props=(
            Prop("path", "Path", "SMSConnectNetworkFolderPath"),
            Prop("driveLetter", "DriveLetter", "SMSConnectNetworkFolderDriveLetter"),
            Prop("account", "Account", "SMSConnectNetworkFolderAccount"),
            Prop("password", "Password", "SMSConnectNetworkFolderPassword", "secret"),
        ),
        action="osdnetfolder.exe",
    ),
    StepType(
        "DownloadPackageContent", "SMS_TaskSequence_DownloadPackageContentAction", "Download Package Content",
        props=(
            Prop("packages", "DownloadPackages", "OSDDownloadDownloadPackages",
                 doc="Comma-separated package IDs, as ConfigMgr stores them."),
            Prop("destination", "DestinationLocationType", "OSDDownloadDestinationLocationType",
                 doc="TSCache, CCMCache or Custom."),
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
            Prop("rebootCount", "RebootCount", "OSDBitLockerRebootCount", "int"),
            Prop("drive", "Drive", "OSDBitLockerDrive"),
        ),
        run_in="FullOS", action="OSDBitLocker.exe /disable ",
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
            Prop("package", "PackageID", "OSDCaptureUserStatePackageID", "package", doc="USMT package."),
            Prop("captureAll", "CaptureAll", "OSDMigrateMode", doc="Simple or Advanced."),
            Prop("configFiles", "ConfigFiles", "OSDMigrateConfigFiles"),
            Prop("continueOnError", "ContinueOnError", "OSDMigrateContinueOnLockedFiles", "bool"),
            Prop("verbose", "VerboseLogging", "OSDMigrateEnableVerboseLogging", "bool"),
            Prop("skipEncryptedFiles", "SkipEncryptedFiles", "OSDMigrateSkipEncryptedFiles", "bool"),
            Prop("useHardLinks", "UseHardLinks", "_OSDMigrateUseHardlinks", "bool"),
            Prop("captureMode", "CaptureMode", "_OSDMigrateCaptureMode"),
        ),
        run_in="FullOS", action="OSDMigrateUserState.exe /capture",
    ),
    StepType(
        "RestoreUserState", "SMS_TaskSequence_RestoreUserStateAction", "Restore User State",
        props=(
            Prop("package", "PackageID", "OSDRestoreUserStatePackageID", "package", doc="USMT package."),
            Prop("restoreMode", "RestoreMode", "OSDMigrateMode", doc="Simple or Advanced."),
            Prop("configFiles", "ConfigFiles", "OSDMigrateConfigFiles"),
            Prop("restoreLocalAccounts", "RestoreLocalAccounts", "OSDMigrateLocalAccounts", "bool"),
            Prop("localAccountPassword", "LocalAccountPassword", "OSDMigrateLocalAccountPassword", "secret"),
            Prop("continueOnError", "ContinueOnError", "OSDMigrateContinueOnRestore", "bool"),
            Prop("verbose", "VerboseLogging", "OSDMigrateEnableVerboseLogging", "bool"),
        ),
        run_in="FullOS", action="OSDMigrateUserState.exe /restore",
    ),
    StepType(
        "RequestStateStore", "SMS_TaskSequence_RequestStateStoreAction", "Request State Store",
        props=(
            Prop("stateStoreType", "StateStoreType", "OSDStateStoreType", doc="Capture or Restore."),
            Prop("retryCount", "RetryCount", "OSDStateStoreRetryCount", "int"),
            Prop("retryWait", "RetryWait", "OSDStateStoreRetryWait", "int"),
            Prop("fallbackToAccount", "FallbackToNAA", "OSDStateFallbackToNAA", "bool"),
        ),
        action="osdsmpclient.exe /capture",
    ),
    StepType(
        "ReleaseStateStore", "SMS_TaskSequence_ReleaseStateStoreAction", "Release State Store",
        action="osdsmpclient.exe /release",
    ),
    StepType(
        "PrepareConfigMgrClient", "SMS_TaskSequence_PrepareSMSClientAction", "Prepare ConfigMgr Client for Capture",
        run_in="FullOS", action="osdpreparesmsclient.exe",
    ),
    StepType(
        "PrepareWindowsForCapture", "SMS_TaskSequence_PrepareOSAction", "Prepare Windows for Capture",
        props=(
            Prop("buildMassStorageDriverList", "BuildStorageDriverList", "OSDBuildStorageDriverList", "bool"),
            Prop("keepActivation", "KeepActivation", "OSDKeepActivation", "bool"),
        ),
        run_in="FullOS",
        action="osdprepareos.exe /activate:%OSDKeepActivation% /bmsd:%OSDBuildStorageDriverList% "
               "/shutdown:%OSDShutdownPreparedOs%",
    ),
    StepType(
        "CaptureOperatingSystemImage", "SMS_TaskSequence_CaptureSystemImageAction", "Capture Operating System Image",
        props=(
            Prop("destination", "CaptureDestination", "OSDCaptureDestination", doc="UNC path of the .wim."),
            Prop("description", "ImageDescription", "OSDImageDescription"),
            Prop("version", "ImageVersion", "OSDImageVersion"),
            Prop("createdBy", "ImageCreator", "OSDImageCreator"),
            Prop("account", "CaptureUsername", "OSDCaptureAccount"),
            Prop("password", "CapturePassword", "OSDCaptureAccountPassword", "secret"),
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
