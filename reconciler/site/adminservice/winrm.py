"""The WinRM path: what the AdminService cannot do (or is unproven to do), run by ConfigMgr on a Windows host.

The AdminService does not offer (or no public source shows working) ``SetSequence`` / ``ImportSequence``,
writes of ``SMS_Advertisement.AssignedSchedule`` arrays, edits of masked variables, prestaged content and SEDO
locks. :class:`WinRMSession` runs them with pypsrp on a host that has the ConfigMgr console: Windows PowerShell
5.1 (the ``Microsoft.PowerShell`` endpoint; the ConfigurationManager module refuses PowerShell 7), ``Import-Module
ConfigurationManager``, a ``CMSite`` drive for the site, then the cmdlets or CIM calls.

How values travel: every value a user wrote (names, IDs, XML, variable values) is a **typed parameter** of a
command added with ``PowerShell.add_cmdlet(...).add_parameters(...)``; no script is ever built from a user
value. Where ConfigMgr needs an object that exists only on the host (``ImportSequence``'s result handed to
``SetSequence``, schedule tokens, an object to lock) one of the constant scripts below runs, and the values
again arrive only as its parameters (``add_script(CONSTANT).add_parameters(...)``). Every cmdlet runs with
``-ErrorAction Stop``, so a failure is a terminating error record, which becomes a typed site error:
:class:`~reconciler.site.errors.TransientSiteError` for a busy, unreachable or timed-out host, else
:class:`~reconciler.site.errors.PermanentSiteError`. Secret values (masked variables) are removed from every
error message, and pypsrp's own logger, which writes whole WinRM messages at DEBUG, is kept at WARNING.

None of the cmdlets used takes a ``SecureString``: a masked variable's value is a ``String`` parameter of
``New-/Set-CMDevice(Collection)Variable``; it travels inside the encrypted WinRM session (HTTPS, or Kerberos /
NTLM message encryption on 5985) and is never logged.

**Not run against a real Windows host here**: tests drive this module through a stand-in for pypsrp's
``RunspacePool`` / ``PowerShell`` that records the commands and typed parameters sent and answers with output,
error records and ``had_errors`` as pypsrp does. Conservative readings where real behaviour is unverified (U):
``New-CimInstance -ClientOnly`` from ``Get-CimClass`` types the new package's properties as the class declares;
``SetSequence`` answers ``SavedTaskSequencePackagePath`` naming the PackageID; ``SedoObjectVersion`` compared
before ``SetSequence`` detects a console edit since the plan (the site also refuses a stale save).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.errors import shorten
from reconciler.site.errors import PermanentSiteError, SiteError, TransientSiteError
from reconciler.site.options import SiteOptions, WinRMOptions

log = logging.getLogger(__name__)

#: The PowerShell endpoint of Windows PowerShell 5.1 (PowerShell 7 registers ``PowerShell.7``).
CONFIGURATION_NAME = "Microsoft.PowerShell"

_PACKAGE_ID = re.compile(r"^[A-Z0-9]{3}[0-9A-F]{5}$")
_COLLECTION_ID = re.compile(r"^[A-Z0-9]{3}[0-9A-F]{5}$")
_SITE_CODE = re.compile(r"^[A-Z0-9]{3}$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
_VARIABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,255}$")
_SAVED_PATH = re.compile(r'PackageID\s*=\s*"([A-Za-z0-9]{8})"')

#: Schedule token classes a deployment's AssignedSchedule may hold (CONFIGMGR.md, Deployments).
SCHEDULE_CLASSES = frozenset({"SMS_ST_NonRecurring", "SMS_ST_RecurInterval", "SMS_ST_RecurWeekly",
                              "SMS_ST_RecurMonthlyByDate", "SMS_ST_RecurMonthlyByWeekday"})

#: ``Publish-CMPrestageContent`` takes one kind of content per call, by its ID parameter.
PRESTAGE_PARAMETERS = {
    "Package": "PackageId",
    "DriverPackage": "DriverPackageId",
    "OperatingSystemImage": "OperatingSystemImageId",
    "BootImage": "BootImageId",
    "OperatingSystemUpgradePackage": "OperatingSystemInstallerId",
    "Application": "ApplicationId",
}

#: System.Management.Automation.ErrorCategory values after which the same call may work later.
_TRANSIENT_CATEGORIES = {4: "DeadlockDetected", 15: "OperationTimeout", 19: "ResourceBusy",
                         21: "ResourceUnavailable", 27: "ConnectionError"}
_MODULE_NOT_FOUND = "Modules_ModuleNotFound"
_CHANGED_SINCE_PLAN = "ReconcileChangedSincePlan"

# -- the constant scripts: values arrive only as parameters ------------------------------------------------------

#: ``ImportSequence`` turns the XML into an SMS_TaskSequence that exists only on the host; ``SetSequence`` with a
#: new client-only package creates it (and refreshes References and Type). Output: the new PackageID.
IMPORT_SEQUENCE_SCRIPT = r"""
param([string]$Namespace, [hashtable]$Properties, [string]$SequenceXml)
$ErrorActionPreference = 'Stop'
$cim = @{Namespace = $Namespace; ClassName = 'SMS_TaskSequencePackage'}
$imported = Invoke-CimMethod @cim -MethodName ImportSequence -Arguments @{SequenceXML = $SequenceXml}
if ($imported.ReturnValue -ne 0) { throw "ImportSequence returned $($imported.ReturnValue)" }
$package = New-CimInstance -CimClass (Get-CimClass @cim) -Property $Properties -ClientOnly
$arguments = @{TaskSequencePackage = $package; TaskSequence = $imported.TaskSequence}
$saved = Invoke-CimMethod @cim -MethodName SetSequence -Arguments $arguments
if ($saved.ReturnValue -ne 0) { throw "SetSequence returned $($saved.ReturnValue)" }
[string]$saved.SavedTaskSequencePackagePath
"""

#: Replace the sequence of an existing package; refuse when the package's SedoObjectVersion moved since the plan.
SET_SEQUENCE_SCRIPT = r"""
param([string]$Namespace, [ValidatePattern('^[A-Z0-9]{3}[0-9A-F]{5}$')][string]$PackageId,
      [string]$SequenceXml, [string]$ExpectedSedoVersion)
$ErrorActionPreference = 'Stop'
$cim = @{Namespace = $Namespace; ClassName = 'SMS_TaskSequencePackage'}
$package = Get-CimInstance @cim -Filter ("PackageID='{0}'" -f $PackageId)
if ($null -eq $package) {
    Write-Error -Message "task sequence $PackageId does not exist" -ErrorId ReconcileNotFound -Category ObjectNotFound
}
if ($ExpectedSedoVersion -and ([string]$package.SedoObjectVersion -ne $ExpectedSedoVersion)) {
    Write-Error -Message "its SedoObjectVersion is now $($package.SedoObjectVersion)" `
        -ErrorId ReconcileChangedSincePlan -Category ResourceExists
}
$imported = Invoke-CimMethod @cim -MethodName ImportSequence -Arguments @{SequenceXML = $SequenceXml}
if ($imported.ReturnValue -ne 0) { throw "ImportSequence returned $($imported.ReturnValue)" }
$arguments = @{TaskSequencePackage = $package; TaskSequence = $imported.TaskSequence}
$saved = Invoke-CimMethod @cim -MethodName SetSequence -Arguments $arguments
if ($saved.ReturnValue -ne 0) { throw "SetSequence returned $($saved.ReturnValue)" }
[string]$saved.SavedTaskSequencePackagePath
"""

#: Write a deployment's whole AssignedSchedule array from token property sets (typed by each SMS_ST_ class).
SET_SCHEDULE_SCRIPT = r"""
param([string]$Namespace, [ValidatePattern('^[A-Z0-9]{3}[0-9A-F]{5}$')][string]$AdvertisementId,
      [object[]]$Schedules)
$ErrorActionPreference = 'Stop'
$filter = "AdvertisementID='{0}'" -f $AdvertisementId
$advert = Get-CimInstance -Namespace $Namespace -ClassName SMS_Advertisement -Filter $filter
if ($null -eq $advert) {
    Write-Error -Message "deployment $AdvertisementId does not exist" -ErrorId ReconcileNotFound `
        -Category ObjectNotFound
}
$invariant = [Globalization.CultureInfo]::InvariantCulture
$roundtrip = [Globalization.DateTimeStyles]::RoundtripKind
$tokens = [CimInstance[]]@(foreach ($schedule in $Schedules) {
    $properties = @{} + $schedule['Properties']
    if ($schedule['StartTime']) {
        $properties['StartTime'] = [datetime]::Parse($schedule['StartTime'], $invariant, $roundtrip)
    }
    $class = Get-CimClass -Namespace $Namespace -ClassName $schedule['Class']
    New-CimInstance -CimClass $class -Property $properties -ClientOnly
})
Set-CimInstance -InputObject $advert -Property @{AssignedSchedule = $tokens}
"""

#: Take or release the SEDO lock of a task sequence (the lock needs the console's context: WinRM only).
LOCK_SCRIPT = r"""
param([ValidatePattern('^[A-Z0-9]{3}[0-9A-F]{5}$')][string]$PackageId, [switch]$Release, [switch]$Force)
$ErrorActionPreference = 'Stop'
$sequence = Get-CMTaskSequence -TaskSequencePackageId $PackageId -Fast
if ($null -eq $sequence) {
    Write-Error -Message "task sequence $PackageId does not exist" -ErrorId ReconcileNotFound -Category ObjectNotFound
}
if ($Release) { Unlock-CMObject -InputObject $sequence -Force:$Force } else { Lock-CMObject -InputObject $sequence }
"""

SCRIPTS = (IMPORT_SEQUENCE_SCRIPT, SET_SEQUENCE_SCRIPT, SET_SCHEDULE_SCRIPT, LOCK_SCRIPT)


# -- the seam: what this module uses of pypsrp ----------------------------------------------------------------


class Streams(Protocol):
    error: list[Any]
    warning: list[Any]


class Shell(Protocol):
    """The part of ``pypsrp.powershell.PowerShell`` this module uses."""

    had_errors: bool
    streams: Streams

    def add_cmdlet(self, cmdlet: str) -> Shell: ...

    def add_parameter(self, parameter_name: str, value: Any = None) -> Shell: ...

    def add_parameters(self, parameters: dict[str, Any]) -> Shell: ...

    def add_script(self, script: str) -> Shell: ...

    def invoke(self) -> list[Any]: ...


class Pool(Protocol):
    """The part of ``pypsrp.powershell.RunspacePool`` this module uses."""

    def open(self) -> None: ...

    def close(self) -> None: ...


def connect(options: WinRMOptions) -> Pool:
    """A RunspacePool on the WinRM host (not yet open), as pypsrp builds it from the options."""
    from pypsrp.powershell import RunspacePool
    from pypsrp.wsman import WSMan

    quiet_pypsrp()
    credentials = options.credentials
    wsman = WSMan(options.host, port=options.port, ssl=options.ssl, auth=options.auth.value,
                  username=credentials.username, password=credentials.password,
                  cert_validation=options.cert_validation, connection_timeout=30, operation_timeout=20,
                  encryption="auto")
    return RunspacePool(wsman, configuration_name=CONFIGURATION_NAME)


def shell(pool: Pool) -> Shell:
    from pypsrp.powershell import PowerShell

    return PowerShell(pool)  # type: ignore[arg-type, return-value]


def quiet_pypsrp() -> None:
    """pypsrp logs every WinRM message whole at DEBUG (parameters included), and pyspnego the NTLM messages of its
    authentication: never let them, even at --log-level debug."""
    for name in ("pypsrp", "requests_credssp", "spnego"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


# -- errors --------------------------------------------------------------------------------------------------


class WinRMError(PermanentSiteError):
    """The WinRM host refused an operation; the message names the operation and the host's reason."""


class WinRMUnavailable(PermanentSiteError):
    """An operation needs the WinRM path and no WinRM host is configured (``site.winrm`` in reconcile.yaml)."""


class ChangedSincePlan(PermanentSiteError):
    """The object was changed (in the console) after the plan was made: its SedoObjectVersion moved."""


class TransientWinRMError(TransientSiteError):
    """The WinRM host or the site behind it could not answer now; the same operation may work later."""


@dataclass(frozen=True, slots=True)
class VariableWrite:
    """One variable to write over WinRM: name, value (clear text, write-only when masked), masked."""

    name: str
    value: str
    masked: bool = False


class WinRMSession:
    """ConfigMgr on a WinRM host, opened on first use: the operations the AdminService path hands over.

    ``site_code`` and ``provider_host`` name the CMSite drive (defaults of ``site.winrm.siteCode`` and
    ``providerHost``). ``connect`` and ``shell`` build pypsrp's RunspacePool and PowerShell; tests pass
    stand-ins at exactly that seam.
    """

    def __init__(self, options: WinRMOptions, *, site_code: str, provider_host: str,
                 connect: Callable[[WinRMOptions], Pool] = connect,
                 shell: Callable[[Pool], Shell] = shell) -> None:
        code = (options.site_code or site_code).upper()
        if not _SITE_CODE.match(code):
            raise WinRMError(f"site code {shorten(code)} is not three letters or digits")
        self.options = options
        self.site_code = code
        self.provider_host = options.provider_host or provider_host
        self._connect = connect
        self._shell = shell
        self._pool: Pool | None = None
        quiet_pypsrp()

    @property
    def namespace(self) -> str:
        return f"root\\SMS\\site_{self.site_code}"

    @property
    def where(self) -> str:
        return f"WinRM host {self.options.host}"

    # -- the session ---------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the runspace, import the ConfigurationManager module and stand on the site's CMSite drive."""
        if self._pool is not None:
            return
        pool = self._connect(self.options)
        try:
            pool.open()
        except Exception as exc:
            raise _connection_error(exc, self.options) from None
        self._pool = pool
        try:
            self._run("Import-Module", {"Name": self.options.configuration_manager_module}, what="importing the "
                      "ConfigurationManager module")
            drives = self._run("Get-PSDrive", {"Name": self.site_code, "PSProvider": "CMSite"},
                               what="looking for the site's CMSite drive", stop=False)
            if not drives:
                self._run("New-PSDrive", {"Name": self.site_code, "PSProvider": "CMSite",
                                          "Root": self.provider_host},
                          what=f"connecting a CMSite drive to {self.provider_host}")
            self._run("Set-Location", {"Path": f"{self.site_code}:\\"}, what="entering the site's CMSite drive")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                pool.close()
            except Exception as exc:  # closing a pool on a dead connection: nothing is left to clean up
                log.debug("closing the WinRM runspace of %s failed: %s", self.options.host, type(exc).__name__)

    def __enter__(self) -> WinRMSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- task sequences -------------------------------------------------------------------------------------

    def import_sequence(self, properties: Mapping[str, Any], sequence_xml: str) -> str:
        """Create a task sequence package with ``properties`` (SMS_TaskSequencePackage names) and this sequence;
        returns the new PackageID."""
        if not isinstance(properties.get("Name"), str) or not properties["Name"]:
            raise WinRMError("creating a task sequence needs its Name")
        saved = self._script(IMPORT_SEQUENCE_SCRIPT, {"Namespace": self.namespace, "Properties": dict(properties),
                                                      "SequenceXml": sequence_xml},
                             what=f"creating task sequence {shorten(properties['Name'])} (ImportSequence, SetSequence)")
        return _saved_package_id(saved, f"creating task sequence {shorten(properties['Name'])}")

    def set_sequence(self, package_id: str, sequence_xml: str, sedo_version: str | int | None = None) -> None:
        """Replace the sequence of ``package_id``; ``sedo_version`` is the SedoObjectVersion the plan saw."""
        _check(_PACKAGE_ID, package_id, "PackageID")
        self._script(SET_SEQUENCE_SCRIPT, {"Namespace": self.namespace, "PackageId": package_id,
                                           "SequenceXml": sequence_xml,
                                           "ExpectedSedoVersion": "" if sedo_version is None else str(sedo_version)},
                     what=f"updating the sequence of {package_id} (ImportSequence, SetSequence)", subject=package_id)

    def lock(self, package_id: str) -> None:
        """Take the SEDO lock of a task sequence (``Lock-CMObject``)."""
        _check(_PACKAGE_ID, package_id, "PackageID")
        self._script(LOCK_SCRIPT, {"PackageId": package_id}, what=f"locking {package_id} (Lock-CMObject)")

    def unlock(self, package_id: str, force: bool = False) -> None:
        """Release the SEDO lock of a task sequence (``Unlock-CMObject``; ``force`` also releases another's)."""
        _check(_PACKAGE_ID, package_id, "PackageID")
        parameters: dict[str, Any] = {"PackageId": package_id, "Release": True}
        if force:
            parameters["Force"] = True
        self._script(LOCK_SCRIPT, parameters, what=f"unlocking {package_id} (Unlock-CMObject)")

    # -- deployments ----------------------------------------------------------------------------------------

    def set_assigned_schedule(self, advertisement_id: str, tokens: Sequence[Mapping[str, Any]]) -> None:
        """Write a deployment's whole AssignedSchedule from ``SMS_ST_*`` tokens as the records hold them
        (``{"@odata.type": "#AdminService.SMS_ST_RecurWeekly", "Day": 6, "StartTime": "…Z", …}``)."""
        _check(_PACKAGE_ID, advertisement_id, "AdvertisementID")
        schedules = [_schedule(token) for token in tokens]
        self._script(SET_SCHEDULE_SCRIPT, {"Namespace": self.namespace, "AdvertisementId": advertisement_id,
                                           "Schedules": schedules},
                     what=f"writing the schedule of deployment {advertisement_id} (AssignedSchedule)",
                     subject=advertisement_id)

    # -- variables --------------------------------------------------------------------------------------------

    def set_collection_variables(self, collection_id: str, variables: Sequence[VariableWrite],
                                 existing: Iterable[str]) -> None:
        """Make the collection's variables exactly ``variables``: ``Set-`` those in ``existing`` (names on the site
        now), ``New-`` the others, ``Remove-`` existing ones not listed. Masked values go only as parameters."""
        _check(_COLLECTION_ID, collection_id, "CollectionID")
        if collection_id.startswith("SMS"):
            raise WinRMError(f"collection {collection_id} is built in; built-in collections hold no variables")
        self._set_variables(("CollectionId", collection_id), variables, existing, "DeviceCollectionVariable",
                            f"collection {collection_id}")

    def set_device_variables(self, resource_id: int, variables: Sequence[VariableWrite],
                             existing: Iterable[str]) -> None:
        """The same for a computer (``New-CMDeviceVariable -DeviceId``; ``Set-``/``Remove-`` by ``-ResourceId``)."""
        if not isinstance(resource_id, int) or isinstance(resource_id, bool) or resource_id <= 0:
            raise WinRMError(f"ResourceID {shorten(resource_id)} is not a positive number")
        self._set_variables(("ResourceId", str(resource_id)), variables, existing, "DeviceVariable",
                            f"computer {resource_id}")

    def _set_variables(self, target: tuple[str, str], variables: Sequence[VariableWrite], existing: Iterable[str],
                       noun: str, who: str) -> None:
        present = {name.lower(): name for name in existing}
        wanted = {v.name.lower() for v in variables}
        for variable in variables:
            _check(_VARIABLE_NAME, variable.name, "variable name")
        secrets = [v.value for v in variables if v.masked]
        key, value = target
        collection = noun == "DeviceCollectionVariable"
        for variable in variables:
            if variable.name.lower() in present:
                parameters = {key: value, "VariableName": present[variable.name.lower()],
                              "NewVariableValue": variable.value, "IsMask": variable.masked}
                verb = "Set"
            else:
                # New-CMDeviceVariable names the computer -DeviceId; Set-/Remove- name it -ResourceId.
                new_key = key if collection else "DeviceId"
                parameters = {new_key: value, "VariableName": variable.name,
                              ("Value" if collection else "VariableValue"): variable.value, "IsMask": variable.masked}
                verb = "New"
            self._run(f"{verb}-CM{noun}", parameters, what=f"{'setting' if verb == 'Set' else 'adding'} variable "
                      f"{variable.name} of {who}", secrets=secrets, subject=who)
        for lower, name in sorted(present.items()):
            if lower not in wanted:
                self._run(f"Remove-CM{noun}", {key: value, "VariableName": name, "Force": True},
                          what=f"removing variable {name} of {who}", secrets=secrets, subject=who)

    # -- content ----------------------------------------------------------------------------------------------

    def publish_prestage(self, content: Mapping[str, Sequence[str]], file_name: str, distribution_point: str
                         ) -> list[str]:
        """``Publish-CMPrestageContent`` of content by kind (``{"Package": ["PS100012"], "BootImage": […]}``) from
        ``distribution_point`` into ``file_name`` on the WinRM host; one file per kind (the cmdlet takes one kind
        per call): ``file_name`` itself for a single kind, ``<stem>-<Kind>.pkgx`` beside it otherwise. Returns the
        files written, as paths on the host."""
        _check_windows_path(file_name)
        kinds = [kind for kind in content if content[kind]]
        unknown = [kind for kind in kinds if kind not in PRESTAGE_PARAMETERS]
        if unknown:
            raise WinRMError(f"content of kind {shorten(unknown[0])} cannot be prestaged; kinds: "
                             f"{', '.join(PRESTAGE_PARAMETERS)}")
        written = []
        for kind in kinds:
            ids = list(content[kind])
            for package_id in ids:
                _check(_PACKAGE_ID, package_id, f"{kind} ID")
            _check(_HOST_NAME, distribution_point, "distribution point")
            target = file_name if len(kinds) == 1 else _per_kind(file_name, kind)
            self._run("Publish-CMPrestageContent", {PRESTAGE_PARAMETERS[kind]: ids, "FileName": target,
                                                    "DistributionPointName": distribution_point},
                      what=f"prestaging {len(ids)} {kind} item(s) from {distribution_point} into {target}")
            written.append(target)
        return written

    # -- running commands ---------------------------------------------------------------------------------------

    def _run(self, cmdlet: str, parameters: dict[str, Any], *, what: str, stop: bool = True,
             secrets: Sequence[str] = (), subject: str | None = None) -> list[Any]:
        """One cmdlet with typed parameters (and ``-ErrorAction Stop`` unless ``stop`` is False: a lookup that may
        find nothing)."""
        if self._pool is None:
            self.open()
        assert self._pool is not None
        command = self._shell(self._pool).add_cmdlet(cmdlet).add_parameters(parameters)
        command.add_parameter("ErrorAction", "Stop" if stop else "SilentlyContinue")
        return self._invoke(command, what, secrets, subject, report_errors=stop)

    def _script(self, script: str, parameters: dict[str, Any], *, what: str, subject: str | None = None) -> list[Any]:
        """One of this module's constant scripts; values only as its parameters."""
        assert any(script is known for known in SCRIPTS), "only this module's constant scripts run"
        if self._pool is None:
            self.open()
        assert self._pool is not None
        command = self._shell(self._pool).add_script(script).add_parameters(parameters)
        return self._invoke(command, what, (), subject, report_errors=True)

    def _invoke(self, command: Shell, what: str, secrets: Sequence[str], subject: str | None,
                report_errors: bool) -> list[Any]:
        try:
            output = command.invoke()
        except Exception as exc:
            raise _connection_error(exc, self.options, what) from None
        errors = list(command.streams.error) if report_errors else []
        if command.had_errors or errors:
            raise _record_error(errors, what, self.where, secrets, subject)
        return list(output or [])


def _check(pattern: re.Pattern[str], value: object, what: str) -> None:
    if not isinstance(value, str) or not pattern.match(value):
        raise WinRMError(f"{what} {shorten(value)} is not valid; nothing was sent to the WinRM host")


def _check_windows_path(path: str) -> None:
    """A prestage file is written on the WinRM host: an absolute Windows path or a UNC share, ending in .pkgx."""
    if not isinstance(path, str) or len(path) > 260 or any(ord(c) < 0x20 for c in path) \
            or not re.match(r"^([A-Za-z]:\\|\\\\[^\\/]+\\[^\\/]+\\)", path) or not path.lower().endswith(".pkgx"):
        raise WinRMError(f"prestage file {shorten(path)} is not a path on the WinRM host: write an absolute Windows "
                         "path or a share, ending in .pkgx, such as C:\\Prestage\\win11.pkgx or "
                         "\\\\fs01\\prestage\\win11.pkgx")


def _per_kind(file_name: str, kind: str) -> str:
    return f"{file_name[:-len('.pkgx')]}-{kind}.pkgx"


def _schedule(token: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule token as the script takes it: the class, its properties, StartTime as ISO text apart."""
    kind = str(token.get("@odata.type") or token.get("__CLASS") or "").rsplit(".", 1)[-1].lstrip("#")
    if kind not in SCHEDULE_CLASSES:
        raise WinRMError(f"schedule token class {shorten(kind)} is not one of {', '.join(sorted(SCHEDULE_CLASSES))}")
    properties = {k: v for k, v in token.items() if not k.startswith(("@", "__")) and k != "StartTime"}
    for name, value in properties.items():
        if not isinstance(value, bool | int | str) or not re.match(r"^[A-Za-z][A-Za-z0-9]*$", name):
            raise WinRMError(f"schedule token {kind}: property {shorten(name)} = {shorten(value)} is not a plain value")
    schedule: dict[str, Any] = {"Class": kind, "Properties": properties}
    if token.get("StartTime"):
        schedule["StartTime"] = str(token["StartTime"])
    return schedule


def _saved_package_id(output: list[Any], what: str) -> str:
    text = str(output[-1]) if output else ""
    found = _SAVED_PATH.search(text)
    if not found:
        raise WinRMError(f"{what}: SetSequence answered {shorten(text)}, which names no PackageID")
    return found.group(1).upper()


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "(sensitive)")
    return text


def _record_text(record: Any) -> str:
    """The message of a pypsrp ErrorRecord: its ToString (the exception's message), else the category line."""
    text = str(record) if record is not None else ""
    if not text or text == "None" or text.startswith("<"):
        text = getattr(record, "message", None) or getattr(record, "reason", None) or type(record).__name__
    return " ".join(str(text).split())


def _clip(text: str, limit: int = 300) -> str:
    """A message from the host, cut to ``limit`` characters (with its length) so a huge answer stays one line."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _record_error(errors: list[Any], what: str, where: str, secrets: Sequence[str], subject: str | None
                  ) -> SiteError:
    """A typed site error from the error records of a failed pipeline (secret values removed, each message short)."""
    if not errors:
        return WinRMError(f"{where}: {what} failed without an error record")
    first = errors[0]
    fq_error = str(getattr(first, "fq_error", "") or "")
    category = getattr(first, "category", None)
    message = _redact(_record_text(first), secrets)
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    message = _clip(message)
    text = f"{where}: {what}: {message}{more}"
    if fq_error.startswith(_CHANGED_SINCE_PLAN):
        return ChangedSincePlan(f"{subject or 'the object'} changed in the console since the plan ({message}); plan "
                                "again")
    if fq_error.startswith(_MODULE_NOT_FOUND):
        return WinRMError(f"{text}. Install the ConfigMgr console on {where.removeprefix('WinRM host ')} or set "
                          "site.winrm.configurationManagerModule to the path of ConfigurationManager.psd1")
    if isinstance(category, int) and category in _TRANSIENT_CATEGORIES:
        return TransientWinRMError(f"{text} [{_TRANSIENT_CATEGORIES[category]}]")
    if category == 18:  # PermissionDenied
        return WinRMError(f"{text}. The account needs a ConfigMgr role with this permission and the object's "
                          "security scope")
    return WinRMError(text)


def _connection_error(exc: Exception, options: WinRMOptions, what: str = "connecting") -> SiteError:
    """pypsrp's and requests' failures, typed: unreachable, timed out or busy is transient; refused is permanent."""
    name = type(exc).__name__
    names = {cls.__name__ for cls in type(exc).__mro__}
    where = f"WinRM host {options.endpoint}"
    try:
        from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError
    except ImportError:  # pragma: no cover - pypsrp is a dependency
        AuthenticationError = WinRMTransportError = WSManFaultError = ()  # type: ignore[assignment, misc]
    if isinstance(exc, AuthenticationError):
        who = options.credentials.describe()
        return WinRMError(f"{where}: {what}: {options.auth.value} authentication as {who} failed")
    if isinstance(exc, WinRMTransportError):
        code = getattr(exc, "code", None)
        if code in (429, 502, 503, 504):
            return TransientWinRMError(f"{where}: {what}: HTTP {code}")
        if code == 401:
            return WinRMError(f"{where}: {what}: HTTP 401: {options.auth.value} authentication as "
                              f"{options.credentials.describe()} was refused")
        return WinRMError(f"{where}: {what}: HTTP {code}")
    if isinstance(exc, WSManFaultError):
        reason = " ".join(str(getattr(exc, "reason", "") or exc).split())
        return WinRMError(f"{where}: {what}: {_clip(reason, 200)}")
    if "SSLError" in names:
        return WinRMError(f"{where}: {what}: the host's TLS certificate is not trusted; set site.winrm.caBundle to the "
                          "CA that issued it")
    if names & {"ConnectionError", "Timeout", "TimeoutError"}:
        return TransientWinRMError(f"{where}: {what}: {name}")
    return WinRMError(f"{where}: {what}: {name}: {_clip(' '.join(str(exc).split()), 200)}")


def session_for(options: SiteOptions, site_code: str) -> WinRMSession | None:
    """The WinRM session a remote site's options describe (not yet open), or None without ``site.winrm``."""
    if options.winrm is None:
        return None
    return WinRMSession(options.winrm, site_code=site_code, provider_host=options.host)


def require(session: WinRMSession | None, operation: str, site: str) -> WinRMSession:
    """The session, or WinRMUnavailable naming the operation that needs it."""
    if session is None:
        raise WinRMUnavailable(f"site {site}: {operation} needs the WinRM path (the AdminService does not offer it, "
                               "or it is unproven over REST) and no WinRM host is configured: set site.winrm.host in "
                               "reconcile.yaml to a Windows server with the ConfigMgr console and WinRM enabled")
    return session
