"""Deployments of task sequences (``SMS_Advertisement``, ``ProgramName`` ``*``)."""

from __future__ import annotations

import json

from reconciler.site.embedded.database import SiteDatabase, record_json
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import DeploymentRecord

#: ConfigMgr keeps at most this many schedule tokens in ``AssignedSchedule``.
MAX_SCHEDULE_TOKENS = 15


def deployment_from_row(dep_id: str, text: str) -> DeploymentRecord:
    data = json.loads(text)
    data["assigned_schedule"] = tuple(data.get("assigned_schedule") or ())
    return DeploymentRecord(id=dep_id, **data)


class Deployments(SiteDatabase):
    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        row = self._db.execute("SELECT record FROM deployments WHERE id = ?", (deployment_id,)).fetchone()
        return deployment_from_row(deployment_id, row[0]) if row else None

    def find_deployments(self, package_id: str, collection_id: str) -> list[DeploymentRecord]:
        rows = self._db.execute("SELECT id, record FROM deployments WHERE package_id = ? AND collection_id = ?",
                                (package_id, collection_id)).fetchall()
        return [deployment_from_row(i, r) for i, r in rows]

    def _check_deployment(self, record: DeploymentRecord) -> None:
        if not self._db.execute("SELECT 1 FROM task_sequences WHERE id = ?", (record.package_id,)).fetchone():
            raise PermanentSiteError(f"task sequence {record.package_id} does not exist")
        if not self._db.execute("SELECT 1 FROM collections WHERE id = ?", (record.collection_id,)).fetchone():
            raise PermanentSiteError(f"collection {record.collection_id} does not exist")
        if len(record.assigned_schedule) > MAX_SCHEDULE_TOKENS:
            raise PermanentSiteError(f"a deployment holds at most {MAX_SCHEDULE_TOKENS} schedule tokens")

    def create_deployment(self, record: DeploymentRecord) -> str:
        self._check_deployment(record)
        with self._tx() as db:
            dep_id = self._new_id(db)
            db.execute("INSERT INTO deployments VALUES (?, ?, ?, ?)",
                       (dep_id, record.package_id, record.collection_id, record_json(record)))
        return dep_id

    def update_deployment(self, deployment_id: str, record: DeploymentRecord) -> None:
        current = self.get_deployment(deployment_id)
        if current is None:
            raise PermanentSiteError(f"deployment {deployment_id} does not exist")
        if (current.package_id, current.collection_id) != (record.package_id, record.collection_id):
            # SMS_Advertisement.PackageID and CollectionID are read-only after creation.
            raise PermanentSiteError("the task sequence and collection of a deployment cannot be changed; replace it")
        self._check_deployment(record)
        with self._tx() as db:
            db.execute("UPDATE deployments SET record = ? WHERE id = ?", (record_json(record), deployment_id))

    def delete_deployment(self, deployment_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM deployments WHERE id = ?", (deployment_id,))
