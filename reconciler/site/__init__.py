"""The live site: one interface the planner and applier use, whatever the site is.

``EmbeddedSite`` (SQLite) is the default; an AdminService implementation fills the same records
from the ConfigMgr REST API. Nothing outside this package knows how a site stores anything.
"""

from __future__ import annotations

from typing import Protocol

from reconciler.site.records import (
    Collection,
    CollectionSettings,
    Computer,
    ContentState,
    ContentStatus,
    DeploymentRecord,
    DistributionPoint,
    DistributionPointGroup,
    LiveState,
    LiveVariable,
    MachineSettings,
    Package,
    PackageType,
    TaskSequenceRecord,
)


class Site(Protocol):
    """What reconciling needs from a ConfigMgr site. Every mutation is one transaction."""

    site_code: str

    def read(self) -> LiveState: ...

    def get_task_sequence(self, ts_id: str) -> TaskSequenceRecord | None: ...

    def find_task_sequences(self, name: str) -> list[TaskSequenceRecord]: ...

    def create_task_sequence(self, record: TaskSequenceRecord) -> str: ...

    def update_task_sequence(self, ts_id: str, record: TaskSequenceRecord) -> None: ...

    def set_task_sequence_enabled(self, ts_id: str, enabled: bool) -> None: ...

    def move_task_sequence(self, ts_id: str, folder: str | None) -> None: ...

    def delete_task_sequence(self, ts_id: str) -> None: ...

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None: ...

    def find_deployments(self, package_id: str, collection_id: str) -> list[DeploymentRecord]: ...

    def create_deployment(self, record: DeploymentRecord) -> str: ...

    def update_deployment(self, deployment_id: str, record: DeploymentRecord) -> None: ...

    def delete_deployment(self, deployment_id: str) -> None: ...

    def content_status(self, package_id: str) -> dict[str, ContentStatus]: ...

    def distribute_content(self, package_id: str, dps: list[str]) -> None: ...

    def redistribute_content(self, package_id: str, dp: str) -> None: ...

    def remove_content(self, package_id: str, dps: list[str]) -> None: ...

    def get_collection_settings(self, collection_id: str) -> CollectionSettings | None: ...

    def set_collection_variables(self, collection_id: str, precedence: int,
                                 variables: list[tuple[str, str, bool]]) -> None: ...

    def get_machine_settings(self, resource_id: int) -> MachineSettings | None: ...

    def set_computer_variables(self, resource_id: int, variables: list[tuple[str, str, bool]]) -> None: ...


__all__ = [
    "Collection",
    "CollectionSettings",
    "Computer",
    "ContentState",
    "ContentStatus",
    "DeploymentRecord",
    "DistributionPoint",
    "DistributionPointGroup",
    "LiveState",
    "LiveVariable",
    "MachineSettings",
    "Package",
    "PackageType",
    "Site",
    "TaskSequenceRecord",
]
