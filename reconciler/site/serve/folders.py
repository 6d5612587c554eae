"""Console folders of task sequences through ``reconcile site serve``: ``SMS_ObjectContainerNode`` (folders) and
``SMS_ObjectContainerItem`` (a sequence in a folder), ObjectType 20, as a site keeps them.

A sequence in the root has no folder item. Creating an item puts a sequence that is in the root into a folder;
deleting it puts the sequence back in the root; ``MoveMembers`` moves sequences from one folder to another
(each must be in the source folder). A sequence already in a folder is refused a second item (a console
object is in at most one folder per ObjectType). A folder can be deleted only when it holds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.site.adminservice import wire
from reconciler.site.serve.backend import SiteBackend
from reconciler.site.serve.odata import BadRequest, NotFound, SiteRefusal

Body = Mapping[str, Any]
Key = tuple[tuple[str | None, Any], ...]
_TS = wire.TASK_SEQUENCE_OBJECT_TYPE


def _object_type(body: Body) -> None:
    if wire._int(body.get("ObjectType"), -1) != _TS:
        raise BadRequest(f"this server keeps task sequence folders only (ObjectType {_TS})")


def _folder_path(b: SiteBackend, node: Any) -> str | None:
    """The path of a folder node; None for the root (0); refused when the folder does not exist."""
    if node in (0, None):
        return None
    path = b.folders.path(wire._int(node, -1))
    if path is None:
        raise SiteRefusal(f"folder {str(node)[:20]} does not exist")
    return path


def create_folder(b: SiteBackend, body: Body) -> dict[str, Any]:
    _object_type(body)
    name = body.get("Name")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise BadRequest("a folder needs a Name without '/'")
    parent = _folder_path(b, body.get("ParentContainerNodeID", 0))
    path = f"{parent}/{name}" if parent else name
    if path in b.folders.nodes:
        raise SiteRefusal(f"a folder named {name[:60]!r} already exists there")
    node = b.folders.add(path)
    b.invalidate()
    return b.find("SMS_ObjectContainerNode", {"ContainerNodeID": node}) or {}


def delete_folder(b: SiteBackend, key: Key) -> None:
    row = b.get("SMS_ObjectContainerNode", key)
    if row is None:
        raise NotFound(f"folder {key[0][1]} does not exist")
    path = str(b.folders.path(row["ContainerNodeID"]))
    if not row["IsEmpty"] or any(p.startswith(path + "/") for p in b.folders.nodes):
        raise SiteRefusal(f"folder {path!r} is not empty")
    b.folders.remove(path)
    b.invalidate()


def _task_sequence(b: SiteBackend, ts_id: Any) -> str:
    if not isinstance(ts_id, str) or ts_id not in b.state().task_sequences:
        raise SiteRefusal(f"task sequence {str(ts_id)[:20]} does not exist")
    return ts_id


def create_item(b: SiteBackend, body: Body) -> dict[str, Any]:
    _object_type(body)
    ts_id = _task_sequence(b, body.get("InstanceKey"))
    current = b.state().task_sequences[ts_id].folder
    if current:
        raise SiteRefusal(f"task sequence {ts_id} is already in folder {current!r}: move it with MoveMembers")
    path = _folder_path(b, body.get("ContainerNodeID"))
    if path is None:
        raise BadRequest("ContainerNodeID names the folder (the root holds no folder items)")
    b.site.move_task_sequence(ts_id, path)
    b.dirty = True
    return next((r for r in b.rows("SMS_ObjectContainerItem") if r["InstanceKey"] == ts_id), {})


def delete_item(b: SiteBackend, key: Key) -> None:
    row = b.get("SMS_ObjectContainerItem", key)
    if row is None:
        raise NotFound(f"folder item {key[0][1]} does not exist")
    b.site.move_task_sequence(row["InstanceKey"], None)
    b.dirty = True


def move_members(b: SiteBackend, body: Body) -> dict[str, Any]:
    _object_type(body)
    keys = body.get("InstanceKeys")
    if not isinstance(keys, list) or not keys:
        raise BadRequest("MoveMembers takes InstanceKeys, ContainerNodeID, TargetContainerNodeID and ObjectType")
    source = _folder_path(b, body.get("ContainerNodeID", 0))
    target = _folder_path(b, body.get("TargetContainerNodeID", 0))
    for ts_id in keys:
        _task_sequence(b, ts_id)
        if b.state().task_sequences[ts_id].folder != source:
            raise SiteRefusal(f"task sequence {ts_id} is not in folder {source or '(root)'!r}")
    for ts_id in keys:
        b.site.move_task_sequence(ts_id, target)
    b.dirty = True
    return {"ReturnValue": 0}
