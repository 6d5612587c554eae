"""Deployments of task sequences over the AdminService (``SMS_Advertisement``).

A deployment is created with a POST and changed with a PUT of every property (a PUT replaces); its
``AssignedSchedule`` array goes over WinRM unless ``rest_unproven`` (one module saw HTTP 500 writing a schedule
token over REST). ``PackageID`` and ``CollectionID`` are read-only after creation: such a change is a replace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.site.adminservice import wire
from reconciler.site.adminservice.connection import WINRM, SiteConnection
from reconciler.site.adminservice.reading import convert
from reconciler.site.adminservice.winrm import WinRMSession
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import DeploymentRecord

#: ConfigMgr keeps at most this many schedule tokens in ``AssignedSchedule``.
MAX_SCHEDULE_TOKENS = 15


class Deployments(SiteConnection):
    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        row = self._transport.get("SMS_Advertisement", deployment_id)
        return convert("SMS_Advertisement", wire.deployment_record, wire.strip_system(row)) if row else None

    def find_deployments(self, package_id: str, collection_id: str) -> list[DeploymentRecord]:
        where = (f"PackageID eq {wire.odata_literal(package_id)} and "
                 f"CollectionID eq {wire.odata_literal(collection_id)}")
        rows = self._list("SMS_Advertisement", where,
                         names=("AdvertisementID", "PackageID", "CollectionID"))
        found = [self.get_deployment(str(r["AdvertisementID"])) for r in rows
                 if r.get("PackageID") == package_id and r.get("CollectionID") == collection_id]
        return [d for d in found if d is not None]

    def _deployment_body(self, record: DeploymentRecord, schedule_over_rest: bool) -> dict[str, Any]:
        row = wire.deployment_row(record, site_code=self.site_code)
        if not schedule_over_rest:
            row.pop("AssignedSchedule")
        return {k: v for k, v in row.items() if k != "AdvertisementID" and self._has("SMS_Advertisement", k)}

    def _schedule_session(self, record: DeploymentRecord, current: Mapping[str, Any] | None) -> WinRMSession | None:
        """The WinRM session that writes the schedule, when this write touches one and that path is WinRM."""
        touches = bool(record.assigned_schedule) or bool(current and current.get("AssignedSchedule"))
        if not touches or self._paths["deployment_schedule"] != WINRM:
            return None
        return self._session("deployment_schedule")

    def create_deployment(self, record: DeploymentRecord) -> str:
        self._writable("create_deployment")
        if len(record.assigned_schedule) > MAX_SCHEDULE_TOKENS:
            raise PermanentSiteError(f"a deployment holds at most {MAX_SCHEDULE_TOKENS} schedule tokens")
        session = self._schedule_session(record, None)
        created = self._transport.create("SMS_Advertisement", self._deployment_body(record, session is None))
        dep_id = str(created.get("AdvertisementID") or "")
        if not dep_id:
            raise PermanentSiteError(f"site {self.location}: creating a deployment answered no AdvertisementID")
        if session is not None:
            session.set_assigned_schedule(dep_id, wire.schedule_tokens_wire(record.assigned_schedule))
        return dep_id

    def update_deployment(self, deployment_id: str, record: DeploymentRecord) -> None:
        self._writable("update_deployment")
        current = self._transport.get("SMS_Advertisement", deployment_id)
        if current is None:
            raise PermanentSiteError(f"deployment {deployment_id} does not exist")
        if (current.get("PackageID"), current.get("CollectionID")) != (record.package_id, record.collection_id):
            # SMS_Advertisement.PackageID and CollectionID are read-only after creation.
            raise PermanentSiteError("the task sequence and collection of a deployment cannot be changed; replace it")
        if len(record.assigned_schedule) > MAX_SCHEDULE_TOKENS:
            raise PermanentSiteError(f"a deployment holds at most {MAX_SCHEDULE_TOKENS} schedule tokens")
        session = self._schedule_session(record, current)
        body = {**self._deployment_body(record, session is None), "AdvertisementID": deployment_id}
        try:
            self._transport.update("SMS_Advertisement", deployment_id, body)
            if session is not None:
                session.set_assigned_schedule(deployment_id, wire.schedule_tokens_wire(record.assigned_schedule))
        finally:
            self._forget("SMS_Advertisement", deployment_id)

    def delete_deployment(self, deployment_id: str) -> None:
        self._writable("delete_deployment")
        self._transport.delete("SMS_Advertisement", deployment_id)
        self._forget("SMS_Advertisement", deployment_id)
