"""Live ConfigMgr objects as the Site interface returns them: plain, frozen records.

Field names follow the ConfigMgr classes they model (``SMS_TaskSequencePackage``,
``SMS_Advertisement``, ``SMS_Collection``, …) so that an AdminService implementation can fill the
same records from the REST API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.site.protocol import DeviceLookup


class PackageType(StrEnum):
    """Content types a task sequence references (SMS_PackageBaseclass.PackageType, by name)."""

    PACKAGE = "Package"
    DRIVER_PACKAGE = "DriverPackage"
    TASK_SEQUENCE = "TaskSequence"
    OPERATING_SYSTEM_IMAGE = "OperatingSystemImage"
    BOOT_IMAGE = "BootImage"
    OPERATING_SYSTEM_UPGRADE = "OperatingSystemUpgradePackage"
    APPLICATION = "Application"


class ContentState(IntEnum):
    """SMS_PackageStatusDistPointsSummarizer.State."""

    INSTALLED = 0
    INSTALL_PENDING = 1
    INSTALL_RETRYING = 2
    INSTALL_FAILED = 3
    REMOVAL_PENDING = 4
    REMOVAL_RETRYING = 5
    REMOVAL_FAILED = 6
    CONTENT_UPDATING = 7
    CONTENT_MONITORING = 8


@dataclass(frozen=True, slots=True)
class Collection:
    id: str
    name: str
    member_count: int = 0
    has_site_systems: bool = False
    built_in: bool = False


@dataclass(frozen=True, slots=True)
class DistributionPoint:
    name: str  # server FQDN (ServerNALPath's server)
    site_code: str


@dataclass(frozen=True, slots=True)
class DistributionPointGroup:
    name: str
    members: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()  # IDs of collections associated with the group


@dataclass(frozen=True, slots=True)
class Package:
    id: str
    name: str
    type: PackageType
    source_version: int = 1
    share_enabled: bool = False


@dataclass(frozen=True, slots=True)
class ContentStatus:
    package_id: str
    dp: str
    state: ContentState
    installed_version: int


#: ConfigMgr refuses a task sequence whose sequence XML is larger than this (bytes, UTF-8).
MAX_SEQUENCE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TaskSequenceRecord:
    """An ``SMS_TaskSequencePackage`` with its ``Sequence`` XML."""

    id: str | None
    name: str
    sequence: str
    description: str = ""
    #: the console's task sequence type; "" when the site does not hold it (a real site keeps only ``Type``,
    #: 1 generic or 2 OS deployment, which it sets itself from the steps): such a type is never compared
    ts_type: str = "Custom"
    folder: str | None = None
    enabled: bool = True
    boot_image_id: str | None = None
    high_impact: bool = False
    custom_high_impact: bool = False
    headline: str = ""
    warning_top: str = ""
    warning: str = ""
    warning_install: str = ""
    restart_required: bool = False
    download_size_mb: int | None = None
    run_time_minutes: int | None = None
    category: str | None = None
    duration: int | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """An ``SMS_Advertisement`` of a task sequence (``ProgramName`` is ``*``)."""

    id: str | None
    name: str
    package_id: str
    collection_id: str
    comment: str = ""
    offer_type: int = 2
    advert_flags: int = 0
    remote_client_flags: int = 0
    present_time: str | None = None
    present_time_enabled: bool = False
    expiration_time: str | None = None
    expiration_time_enabled: bool = False
    is_gmt: bool = False
    assigned_schedule: tuple[str, ...] = ()  # schedule tokens as canonical JSON text
    alert_failure_percent: int | None = None
    alert_success_percent: int | None = None
    alert_success_after: str | None = None


@dataclass(frozen=True, slots=True)
class LiveVariable:
    name: str
    value: str | None  # None when masked: the provider never returns a masked value
    masked: bool = False


@dataclass(frozen=True, slots=True)
class CollectionSettings:
    collection_id: str
    precedence: int
    variables: tuple[LiveVariable, ...] = ()


@dataclass(frozen=True, slots=True)
class Computer:
    resource_id: int
    name: str


@dataclass(frozen=True, slots=True)
class MachineSettings:
    resource_id: int
    variables: tuple[LiveVariable, ...] = ()


@dataclass(frozen=True, slots=True)
class VerificationSettings:
    """The site's deployment verification settings (Site properties, General tab in the console).

    ``default_size``: a high-risk deployment to a larger collection needs verification (0 turns it
    off). ``maximum_size``: a larger collection is refused (0 turns it off). ``site_systems``:
    ``block`` refuses collections that contain site system servers, ``warn`` asks for verification.
    """

    default_size: int = 100
    maximum_size: int = 0
    site_systems: str = "block"


@dataclass
class LiveState:
    """Everything a plan needs from the site, read in one go, and a way to ask for the devices it names.

    ``computers`` and ``memberships`` are not every device of the site: a read holds the computers that
    have variables, and :meth:`computer`, :meth:`computers_by_name` and :meth:`member_of` ask the site
    (``devices``) for any other device, once per device per plan. Every device looked up is kept in
    ``computers`` (and its collections in ``memberships``), so ``computers[id]`` holds any device a
    lookup returned. Without ``devices`` (a state built by hand) the two maps are taken as complete.
    Lookups ask the site, so they need it open: plan with a state before the site is closed.
    """

    site_code: str
    collections: dict[str, Collection] = field(default_factory=dict)
    distribution_points: dict[str, DistributionPoint] = field(default_factory=dict)
    dp_groups: dict[str, DistributionPointGroup] = field(default_factory=dict)
    packages: dict[str, Package] = field(default_factory=dict)
    content: dict[tuple[str, str], ContentStatus] = field(default_factory=dict)
    task_sequences: dict[str, TaskSequenceRecord] = field(default_factory=dict)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    collection_settings: dict[str, CollectionSettings] = field(default_factory=dict)
    #: the computers read or looked up so far (at least every computer that holds variables)
    computers: dict[int, Computer] = field(default_factory=dict)
    machine_settings: dict[int, MachineSettings] = field(default_factory=dict)
    verification: VerificationSettings = field(default_factory=VerificationSettings)
    #: resource ID → IDs of the collections the device is a member of, for the devices looked up so far
    memberships: dict[int, tuple[str, ...]] = field(default_factory=dict)
    #: the site's answers about devices not read eagerly; None: ``computers`` and ``memberships`` are complete
    devices: DeviceLookup | None = field(default=None, repr=False, compare=False)
    _named: dict[str, tuple[int, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _absent: set[int] = field(default_factory=set, init=False, repr=False, compare=False)

    def collection_by_name(self, name: str) -> list[Collection]:
        folded = name.casefold()
        return [c for c in self.collections.values() if c.name.casefold() == folded]

    def packages_by_name(self, name: str) -> list[Package]:
        return [p for p in self.packages.values() if p.name == name]

    def computer(self, resource_id: int) -> Computer | None:
        """The device with this ResourceID (asked of the site once), or None."""
        found = self.computers.get(resource_id)
        if found is not None or self.devices is None or resource_id in self._absent:
            return found
        found = self.devices.computer(resource_id)
        if found is None:
            self._absent.add(resource_id)
        else:
            self.computers[resource_id] = found
        return found

    def computers_by_name(self, name: str) -> list[Computer]:
        """The devices with this name, compared without case (asked of the site once per name)."""
        folded = name.casefold()
        if self.devices is None:
            return [c for c in self.computers.values() if c.name.casefold() == folded]
        if folded not in self._named:
            found = self.devices.computers_named(name)
            for computer in found:
                self.computers.setdefault(computer.resource_id, computer)
            self._named[folded] = tuple(c.resource_id for c in found)
        return [self.computers[rid] for rid in self._named[folded]]

    def member_of(self, resource_id: int) -> tuple[str, ...]:
        """IDs of the collections a device is a member of (asked of the site once per device)."""
        found = self.memberships.get(resource_id)
        if found is None and self.devices is not None:
            found = self.memberships[resource_id] = tuple(self.devices.memberships(resource_id))
        return found or ()
