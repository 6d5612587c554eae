"""The ``Site`` protocol: everything the product asks of a ConfigMgr site, whatever the site is.

What every implementation must guarantee (the embedded SQLite site today, the AdminService next):

- **One transaction per mutation.** A create, update, delete, distribution or variable write either
  happens whole or not at all; a reader never sees half of one.
- **Typed errors only.** A call raises :class:`~reconciler.site.errors.TransientSiteError` when the
  same call may work later (busy, timeout, HTTP 503/429, with ``retry_after`` when the site said how
  long) and :class:`~reconciler.site.errors.PermanentSiteError` when the site refused it or cannot be
  used (does not exist, refused, damaged); anything else escaping a site call is a bug in that site.
- **Write-only secrets.** A masked variable or a step password is never returned by any read; reads give
  ``None`` (variables) or an opaque sealed value (sequences), as ConfigMgr does.
- **ConfigMgr's IDs and rules.** IDs are the site's own (``PS100012``, ResourceIDs); the site refuses
  what ConfigMgr refuses (built-in collections hold no variables, at most 1,000 per computer, a
  deployment's task sequence and collection are fixed once created).
- **No complete device list.** A hierarchy has hundreds of thousands of devices: :meth:`Site.read`
  returns only the computers that hold variables, and every other device is looked up one at a time
  (:class:`DeviceLookup`), so a plan costs what its manifests name, not what the site holds.
"""

from __future__ import annotations

from typing import Protocol

from reconciler.site.records import (
    CollectionSettings,
    Computer,
    ContentStatus,
    DeploymentRecord,
    LiveState,
    MachineSettings,
    TaskSequenceRecord,
    VerificationSettings,
)

#: A variable to write: name, value (clear text; the site seals it when masked), masked.
VariableValue = tuple[str, str, bool]


class DeviceLookup(Protocol):
    """Devices and their collection memberships, answered one device at a time, from the site as it is now."""

    def computer(self, resource_id: int) -> Computer | None:
        """The device with this ResourceID, or None."""
        ...

    def computers_named(self, name: str) -> list[Computer]:
        """Every device with this name, compared without case as ConfigMgr does (usually one, or none)."""
        ...

    def memberships(self, resource_id: int) -> tuple[str, ...]:
        """IDs of the collections the device is a member of, sorted; empty for an unknown device."""
        ...


class Site(DeviceLookup, Protocol):
    """A ConfigMgr primary site: what planning, applying, exporting and the controller call on it."""

    #: The three-character site code (``PS1``): the lease and every message name the site by it.
    site_code: str

    @property
    def location(self) -> str:
        """Where the site is, as a person would name it in a message: a file path or a URL."""
        ...

    def close(self) -> None:
        """Release connections; the object is not used afterwards."""
        ...

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> LiveState:
        """One consistent snapshot of what a plan needs: inventory, task sequences, deployments, content
        status, collection variables, the computers that hold variables and their variables, verification
        settings. Other devices are answered on demand through the returned state's lookups."""
        ...

    def changed_since_read(self) -> bool:
        """Whether anyone may have written to the site since the previous call; False only when the site is
        sure nothing changed (a controller then skips an idle tick). A site that cannot tell returns True."""
        ...

    def paths(self) -> dict[str, str]:
        """How each write reaches the site: operation (a method name of this protocol, or ``deployment_schedule``
        and ``masked_variables``) → ``REST``, ``WinRM`` or ``unavailable``. A site with one path answers ``{}``;
        plans show the path of each action and block one no path can do."""
        ...

    def manageable(self) -> dict[str, int]:
        """Cheap counts of the objects this tool could manage (task sequences, deployments, collections and
        computers with variables), by a label a person reads: a lost state store is refused by them."""
        ...

    def verification_settings(self) -> VerificationSettings:
        """The site's deployment verification settings (high-risk deployments)."""
        ...

    def set_verification_settings(self, default_size: int | None = None, maximum_size: int | None = None,
                                  site_systems: str | None = None) -> VerificationSettings:
        """Change the settings given (None keeps one), with the console's own checks; returns the result."""
        ...

    # -- task sequences --------------------------------------------------------------------------

    def get_task_sequence(self, ts_id: str) -> TaskSequenceRecord | None: ...

    def find_task_sequences(self, name: str) -> list[TaskSequenceRecord]:
        """Task sequences with exactly this console name (a console allows duplicates)."""
        ...

    def create_task_sequence(self, record: TaskSequenceRecord) -> str:
        """Create it and return its new PackageID; the site refreshes the reference list from the sequence
        (as ``SetSequence`` does) and seals the secrets in it."""
        ...

    def update_task_sequence(self, ts_id: str, record: TaskSequenceRecord) -> None: ...

    def set_task_sequence_enabled(self, ts_id: str, enabled: bool) -> None: ...

    def move_task_sequence(self, ts_id: str, folder: str | None) -> None: ...

    def delete_task_sequence(self, ts_id: str) -> None:
        """Refused (permanent) while a deployment of it exists."""
        ...

    # -- deployments -----------------------------------------------------------------------------

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None: ...

    def find_deployments(self, package_id: str, collection_id: str) -> list[DeploymentRecord]: ...

    def create_deployment(self, record: DeploymentRecord) -> str: ...

    def update_deployment(self, deployment_id: str, record: DeploymentRecord) -> None:
        """Refused (permanent) when the task sequence or collection would change: such a change is a replace."""
        ...

    def delete_deployment(self, deployment_id: str) -> None: ...

    # -- content ---------------------------------------------------------------------------------

    def content_status(self, package_id: str) -> dict[str, ContentStatus]:
        """Per distribution point (by name), the state and installed version of a package's content."""
        ...

    def distribute_content(self, package_id: str, dps: list[str]) -> None: ...

    def redistribute_content(self, package_id: str, dp: str) -> None: ...

    def remove_content(self, package_id: str, dps: list[str]) -> None: ...

    # -- variables -------------------------------------------------------------------------------

    def get_collection_settings(self, collection_id: str) -> CollectionSettings | None: ...

    def set_collection_variables(self, collection_id: str, precedence: int,
                                 variables: list[VariableValue]) -> None:
        """Replace the collection's whole variable array (as ``SMS_CollectionSettings`` does); empty removes
        the settings. Masked values are write-only from then on."""
        ...

    def get_machine_settings(self, resource_id: int) -> MachineSettings | None: ...

    def set_computer_variables(self, resource_id: int, variables: list[VariableValue]) -> None:
        """Replace the computer's whole variable array; at most 1,000 variables."""
        ...
