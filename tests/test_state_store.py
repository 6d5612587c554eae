"""The state store behind its protocol: no cache between calls, typed errors, one interface for the product.

Real SQLite files; the second process is a real process, synchronised through its pipes (no sleeps).
"""

from __future__ import annotations

import ast
import inspect
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import storage
from reconciler.errors import TransientError
from reconciler.state import SQLiteStateStore, StateBackend, StateBusy, StateError, StateStore, open_state

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"


def test_a_second_store_on_the_same_file_sees_ownership_changes_at_once(tmp_path: Path) -> None:
    """A controller's store must see an adoption (or a replace, a disown) made through another store object."""
    path = tmp_path / "state.db"
    first, second = StateStore(path), StateStore(path)
    try:
        assert second.owned() == {} and not second.is_owned("TaskSequence", "PS100001")  # it has looked once
        first.own("TaskSequence", "win11", "PS100001")
        assert second.owned_id("TaskSequence", "win11") == "PS100001"
        assert second.is_owned("TaskSequence", "PS100001") and second.owned() == {("TaskSequence", "win11"): "PS100001"}
        assert second.owner_of("TaskSequence", "PS100001") == "win11"
        first.own("TaskSequence", "win11", "PS100002")  # replaced: the old live ID is no longer owned
        assert not second.is_owned("TaskSequence", "PS100001") and second.is_owned("TaskSequence", "PS100002")
        first.disown("TaskSequence", "win11")
        assert second.owned_id("TaskSequence", "win11") is None and second.owned() == {}
        assert not second.is_owned("TaskSequence", None)
    finally:
        first.close()
        second.close()


# Opens the store, reads the ownership map (what a running controller has done), then answers each line of
# stdin ("Kind name live_id") with what it sees now, as JSON.
WATCHER = """
import json, sys
from reconciler.state import StateStore
store = StateStore(sys.argv[1])
print(json.dumps(sorted(map(list, store.owned()))), flush=True)
for line in sys.stdin:
    kind, name, live_id = line.split()
    print(json.dumps({"owned_id": store.owned_id(kind, name), "is_owned": store.is_owned(kind, live_id),
                      "owned": len(store.owned())}), flush=True)
store.close()
"""


def test_another_process_sees_an_adoption_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert watcher.stdin is not None and watcher.stdout is not None
    store = StateStore(path)
    try:
        assert json.loads(watcher.stdout.readline()) == []  # it has read the (empty) map
        store.own("TaskSequenceDeployment", "win11-pilot", "PS100007")  # adopted by this process
        watcher.stdin.write("TaskSequenceDeployment win11-pilot PS100007\n")
        watcher.stdin.flush()
        assert json.loads(watcher.stdout.readline()) == {"owned_id": "PS100007", "is_owned": True, "owned": 1}
        store.disown("TaskSequenceDeployment", "win11-pilot")
        watcher.stdin.write("TaskSequenceDeployment win11-pilot PS100007\n")
        watcher.stdin.flush()
        assert json.loads(watcher.stdout.readline()) == {"owned_id": None, "is_owned": False, "owned": 0}
    finally:
        store.close()
        watcher.stdin.close()
        watcher.wait(timeout=60)
    assert watcher.returncode == 0


def test_a_store_busy_past_the_busy_timeout_is_a_transient_error(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / "state.db"
    store = StateStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StateBusy, match=r"state store .* is busy: another process held it locked") as caught:
            store.own("TaskSequence", "x", "PS100001")
        assert isinstance(caught.value, TransientError) and isinstance(caught.value, StateError)
        assert store.owned() == {}  # reads go on (WAL)
        other.execute("ROLLBACK")
        store.own("TaskSequence", "x", "PS100001")
        assert store.owned_id("TaskSequence", "x") == "PS100001"
    finally:
        other.close()
        store.close()


def test_a_store_that_cannot_be_opened_is_one_typed_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(StateError, match=r"state store .*state.db cannot be used: it cannot be opened"):
        StateStore(tmp_path / "state.db")
    # A database URL may not carry the password (process listings, shell history): refused before connecting,
    # and the message never repeats it.
    with pytest.raises(StateError, match=r"postgresql://reconcile@db/reconcile holds a password") as refused:
        open_state("postgresql://reconcile:s3cret-pw@db/reconcile", site="PS1")
    assert "s3cret-pw" not in str(refused.value)


def test_open_state_opens_the_sqlite_store() -> None:
    assert StateStore is SQLiteStateStore


def _members(protocol: type) -> set[str]:
    return {name for cls in protocol.__mro__ if cls.__module__ == "reconciler.state.protocol" for name in vars(cls)
            if not name.startswith("_")}


#: Attributes of a desired state, which some modules also call ``state``.
DESIRED_STATE = {"of_kind", "objects", "findings", "files", "documents", "unread", "parsed", "locate", "name"}
STORE_USERS = ("lease.py", "export.py", "workspace.py", "cli.py", "pipeline.py", "controller", "apply", "plan")


def test_the_protocol_holds_everything_the_product_calls_on_the_state_store() -> None:
    members = _members(StateBackend)
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] not in STORE_USERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            named = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if named == "state" and node.attr not in DESIRED_STATE:
                assert node.attr in members, f"{path.relative_to(PACKAGE)}:{node.lineno} calls state.{node.attr}"


def test_the_sqlite_store_implements_the_whole_protocol() -> None:
    for name in _members(StateBackend):
        declared, implemented = getattr(StateBackend, name), getattr(SQLiteStateStore, name)
        if isinstance(declared, property):
            assert isinstance(implemented, property), name
            continue
        assert list(inspect.signature(implemented).parameters) == list(inspect.signature(declared).parameters), name

