"""Task sequences (``SMS_TaskSequencePackage``): stored as task sequence XML, with the checks ConfigMgr makes."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.site.embedded.database import record_json
from reconciler.site.embedded.sealing import Sealing
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import MAX_SEQUENCE_BYTES, PackageType, TaskSequenceRecord
from reconciler.tsxml.sequence import reference_ids, seal_secrets

_TS_FIELDS = {f.name for f in fields(TaskSequenceRecord)}


def ts_from_row(ts_id: str, text: str, sequence: str) -> TaskSequenceRecord:
    data = json.loads(text)
    data["references"] = tuple(data.get("references") or ())
    return TaskSequenceRecord(id=ts_id, sequence=sequence, **data)


def sequence_references(xml: str) -> tuple[str, ...]:
    """The package IDs a sequence references, as ``SetSequence`` refreshes them; refused when unreadable."""
    try:
        return reference_ids(xml)
    except ReconcilerError as exc:
        raise PermanentSiteError(f"the sequence XML is not valid: {exc}") from None


class TaskSequences(Sealing):
    def get_task_sequence(self, ts_id: str) -> TaskSequenceRecord | None:
        row = self._db.execute("SELECT record, sequence FROM task_sequences WHERE id = ?", (ts_id,)).fetchone()
        return ts_from_row(ts_id, row[0], row[1]) if row else None

    def find_task_sequences(self, name: str) -> list[TaskSequenceRecord]:
        rows = self._db.execute("SELECT id, record, sequence FROM task_sequences WHERE name = ?", (name,)).fetchall()
        return [ts_from_row(i, r, s) for i, r, s in rows]

    def _package_ids(self, package_type: PackageType) -> set[str]:
        rows = self._db.execute("SELECT id FROM packages WHERE type = ?", (package_type.value,))
        return {r[0] for r in rows}

    def _check_ts(self, record: TaskSequenceRecord) -> TaskSequenceRecord:
        if not record.name or len(record.name) > 50:
            raise PermanentSiteError(f"task sequence name {record.name!r} must be 1 to 50 characters")
        if len(record.description) > 512:
            raise PermanentSiteError("task sequence description is longer than 512 characters")
        if len(record.sequence.encode("utf-8")) > MAX_SEQUENCE_BYTES:
            raise PermanentSiteError(f"the sequence of {record.name!r} is larger than 2 MB; ConfigMgr refuses it")
        if record.boot_image_id and record.boot_image_id not in self._package_ids(PackageType.BOOT_IMAGE):
            raise PermanentSiteError(f"boot image {record.boot_image_id} does not exist")
        data = {f: getattr(record, f) for f in _TS_FIELDS}
        data["references"] = sequence_references(record.sequence)  # SetSequence refreshes references
        data["sequence"] = seal_secrets(record.sequence, self._seal)
        return TaskSequenceRecord(**data)

    def create_task_sequence(self, record: TaskSequenceRecord) -> str:
        record = self._check_ts(record)
        with self._tx() as db:
            ts_id = self._new_id(db)
            db.execute("INSERT INTO task_sequences (id, name, record, sequence) VALUES (?, ?, ?, ?)",
                       (ts_id, record.name, record_json(record), record.sequence))
            db.execute("INSERT INTO packages VALUES (?, ?, ?, 1, 0)", (ts_id, record.name, "TaskSequence"))
        return ts_id

    def update_task_sequence(self, ts_id: str, record: TaskSequenceRecord) -> None:
        record = self._check_ts(record)
        with self._tx() as db:
            cur = db.execute("UPDATE task_sequences SET name = ?, record = ?, sequence = ? WHERE id = ?",
                             (record.name, record_json(record), record.sequence, ts_id))
            if cur.rowcount == 0:
                raise PermanentSiteError(f"task sequence {ts_id} does not exist")
            db.execute("UPDATE packages SET name = ? WHERE id = ?", (record.name, ts_id))

    def _patch_ts(self, ts_id: str, **changes: Any) -> None:
        with self._tx() as db:
            row = db.execute("SELECT record FROM task_sequences WHERE id = ?", (ts_id,)).fetchone()
            if row is None:
                raise PermanentSiteError(f"task sequence {ts_id} does not exist")
            data = json.loads(row[0])
            data.update(changes)
            db.execute("UPDATE task_sequences SET record = ? WHERE id = ?", (json.dumps(data, sort_keys=True), ts_id))

    def set_task_sequence_enabled(self, ts_id: str, enabled: bool) -> None:
        self._patch_ts(ts_id, enabled=enabled)

    def move_task_sequence(self, ts_id: str, folder: str | None) -> None:
        self._patch_ts(ts_id, folder=folder)

    def delete_task_sequence(self, ts_id: str) -> None:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM deployments WHERE package_id = ?", (ts_id,)).fetchone():
                raise PermanentSiteError(f"task sequence {ts_id} is still deployed; delete its deployments first")
            db.execute("DELETE FROM task_sequences WHERE id = ?", (ts_id,))
            db.execute("DELETE FROM packages WHERE id = ?", (ts_id,))
            db.execute("DELETE FROM content_status WHERE package_id = ?", (ts_id,))
