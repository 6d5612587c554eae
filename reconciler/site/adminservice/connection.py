"""What every part of the AdminService site shares: the connection, the site it reaches, and per operation the
path a write takes (REST or WinRM), decided once at start-up.

:class:`SiteConnection` owns the transport, ``$metadata``'s capabilities, the read cache and the WinRM session;
the parts of :class:`~reconciler.site.adminservice.site.AdminServiceSite` (task sequences, deployments, content,
variables) are mixins over it, as the embedded site's are over its one database connection.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.site.adminservice import wire
from reconciler.site.adminservice.cache import ReadCache
from reconciler.site.adminservice.metadata import Capabilities
from reconciler.site.adminservice.reading import TS, FullRows, list_rows
from reconciler.site.adminservice.transport import Transport
from reconciler.site.adminservice.winrm import WinRMSession, require
from reconciler.site.errors import PermanentSiteError
from reconciler.site.options import SiteOptions, site_slug

REST, WINRM, UNAVAILABLE = "REST", "WinRM", "unavailable"

#: What each operation does, as a person reads it (the keys are the Site protocol's methods, plus the parts of
#: a write that may take another path than the rest of it).
OPERATIONS = {
    "read": "reading the site (plans, status, export, drift)",
    "create_task_sequence": "creating a task sequence (ImportSequence, SetSequence)",
    "update_task_sequence": "changing a task sequence's steps (ImportSequence, SetSequence)",
    "set_task_sequence_enabled": "enabling or disabling a task sequence",
    "move_task_sequence": "moving a task sequence to another folder (MoveMembers)",
    "delete_task_sequence": "deleting a task sequence",
    "create_deployment": "creating a deployment",
    "update_deployment": "changing a deployment",
    "delete_deployment": "deleting a deployment",
    "deployment_schedule": "writing a deployment's schedule (AssignedSchedule)",
    "distribute_content": "distributing content to distribution points",
    "redistribute_content": "redistributing content",
    "remove_content": "removing content from distribution points",
    "set_collection_variables": "setting collection variables",
    "set_computer_variables": "setting computer variables",
    "masked_variables": "writing hidden (masked) variables",
    "set_verification_settings": "changing the deployment verification settings (site control file)",
}

#: How long rows without a version (a deployment's schedule, a device's name, the site's settings) are trusted.
DEFAULT_MAX_AGE = 900.0
#: ``$filter`` of task sequence folders and folder items (SMS_ObjectContainerNode/Item ObjectType 20).
FOLDER_FILTER = f"ObjectType eq {wire.TASK_SEQUENCE_OBJECT_TYPE}"


def default_cache_file(url: str) -> Path:
    """The read cache of a remote site when none is named: beside its default state store."""
    from reconciler.site.options import STATE_FOLDER

    return STATE_FOLDER / f"{site_slug(url)}.cache.db"


def decide_paths(capabilities: Capabilities, rest_unproven: bool) -> dict[str, str]:
    """Operation → REST, WinRM or unavailable (see the site's module docstring for why each is where it is)."""
    c = capabilities
    sequences = REST if rest_unproven and c.offers_static(TS, "ImportSequence") and \
        c.offers_static(TS, "SetSequence") else WINRM
    move = REST if c.offers_static("SMS_ObjectContainerItem", "MoveMembers") else UNAVAILABLE
    paths = {name: REST for name in OPERATIONS}
    paths.update({"create_task_sequence": sequences, "update_task_sequence": sequences,
                  "move_task_sequence": move, "deployment_schedule": REST if rest_unproven else WINRM,
                  "masked_variables": REST if rest_unproven else WINRM,
                  "set_verification_settings": REST if rest_unproven else UNAVAILABLE})
    return paths


class SiteConnection:
    """One AdminService, open: the transport, what the site offers, its code, the paths, the cache, WinRM."""

    options: SiteOptions
    rest_unproven: bool
    capabilities: Capabilities
    site_code: str
    site_info: dict[str, Any]
    _transport: Transport
    _paths: dict[str, str]
    _cache: ReadCache | None = None
    _winrm: WinRMSession | None = None
    _full: FullRows
    #: SedoObjectVersion of each task sequence as the plan saw it (the last read, or the first look since)
    _versions: dict[str, str]

    def paths(self) -> dict[str, str]:
        """Operation (the protocol's method names, see :data:`OPERATIONS`) → ``REST``, ``WinRM`` or
        ``unavailable``, as decided at start-up from ``$metadata`` and the options. An operation that needs
        WinRM while no WinRM host is configured is ``unavailable``: a plan blocks it instead of failing midway."""
        if self._winrm is None:
            return {op: UNAVAILABLE if path == WINRM else path for op, path in self._paths.items()}
        return dict(self._paths)

    @property
    def location(self) -> str:
        return str(self.options.url)

    @property
    def requests(self) -> Any:
        """Requests made so far, by (method, kind): ``list``, ``get``, ``write``, ``method``, ``metadata``."""
        return self._transport.counts

    def close(self) -> None:
        self._transport.close()
        if self._cache is not None:
            self._cache.close()
        if self._winrm is not None:
            self._winrm.close()

    def _writable(self, operation: str) -> None:
        """Refuse before any request: a read-only site, or an operation no path can do on this site."""
        what = OPERATIONS.get(operation, operation)
        self.options.ensure_writable(what, self.location)
        if self._paths.get(operation) == UNAVAILABLE:
            if operation == "set_verification_settings":
                raise PermanentSiteError(f"site {self.location}: {what} over the AdminService is unproven on a real "
                                         "site; change them in the console (Administration, Sites, Properties, "
                                         "General)")
            raise PermanentSiteError(f"site {self.location}: {what} is not offered by this site's AdminService "
                                     "(wmi/$metadata) and has no WinRM path")

    def _session(self, operation: str) -> WinRMSession:
        return require(self._winrm, OPERATIONS.get(operation, operation), self.location)

    def _has(self, cls: str, name: str) -> bool:
        return not self.capabilities.properties.get(cls) or self.capabilities.has_property(cls, name)

    def _forget(self, cls: str, *keys: str) -> None:
        if self._cache is not None:
            self._cache.forget(cls, list(keys))

    def _list(self, cls: str, where: str | None = None, names: tuple[str, ...] | None = None
              ) -> list[dict[str, Any]]:
        return list_rows(self._transport, self.capabilities, cls, where, names)

    def _folders(self, nodes: list[dict[str, Any]], items: list[dict[str, Any]]) -> Callable[[str], str | None]:
        """The folder path of a task sequence, from the folder nodes and the folder items."""
        folders = wire.Folders.from_rows(nodes)
        where = {str(i.get("InstanceKey")): wire._int(i.get("ContainerNodeID")) for i in items}
        return lambda ts_id: folders.path(where.get(ts_id, 0))
