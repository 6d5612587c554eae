"""One suite for every state store: each test runs against a SQLite file and a PostgreSQL database.

The PostgreSQL server is real, on 127.0.0.1 (tests/postgres_fixture.py): the PostgreSQL half of each test skips
with the reason on a machine without the server binaries, and fails in CI (RECONCILE_TESTS_REQUIRE_POSTGRES).
Every member of :class:`~reconciler.state.StateBackend` is called here; the last test checks that, so a method
added to the protocol must be added to this suite (and so to both stores).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.state import (
    AuditEvent,
    AuditQuery,
    LeaseLost,
    SQLiteStateStore,
    StateBackend,
    StateError,
    open_state,
)
from tests.postgres_fixture import session_server

SITE = "PS1"

#: Opens one more store on the same backing file or database (another process would see the same).
Opener = Callable[[], StateBackend]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[StateBackend] = []
    if request.param == "sqlite":
        def open_one() -> StateBackend:
            opened.append(open_state(tmp_path / "state.db"))
            return opened[-1]
    else:
        server = session_server()
        url = server.create_database()

        def open_one() -> StateBackend:
            opened.append(open_state(url, site=SITE, password=server.password))
            return opened[-1]
    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> StateBackend:
    return opener()


def test_ownership_is_seen_by_another_store_at_once(opener: Opener) -> None:
    store, other = opener(), opener()
    assert store.owned() == {} and store.owned_id("TaskSequence", "a") is None
    store.own("TaskSequence", "a", "PS100001")
    store.own("TaskSequenceDeployment", "a-lab", "PS120001")
    assert other.owned() == {("TaskSequence", "a"): "PS100001", ("TaskSequenceDeployment", "a-lab"): "PS120001"}
    assert other.owned_id("TaskSequence", "a") == "PS100001"
    assert other.is_owned("TaskSequence", "PS100001") and not other.is_owned("TaskSequence", "PS120001")
    assert not other.is_owned("TaskSequence", None)
    assert other.owner_of("TaskSequence", "PS100001") == "a" and other.owner_of("TaskSequence", "PS1") is None
    store.own("TaskSequence", "a", "PS100002")  # the same name owns another ID now
    assert other.owned_id("TaskSequence", "a") == "PS100002"
    store.record_applied("TaskSequence", "a", "d1", "l1", {"@password": "ref"}, {"steps": 2})
    store.disown("TaskSequence", "a")
    assert other.owned_id("TaskSequence", "a") is None and ("TaskSequence", "a") not in other.applied()


def test_last_applied_keeps_fingerprints_secret_hashes_and_extra(store: StateBackend) -> None:
    assert store.applied() == {}
    store.record_applied("TaskSequence", "a", "d1", "l1")
    store.record_applied("CollectionVariables", "lab", "d2", "l2", {"OSDJoinPassword": "ab12"}, {"order": [1, 2]})
    store.record_applied("TaskSequence", "a", "d3", "l3")  # replaced, not added
    applied = store.applied()
    assert applied[("TaskSequence", "a")].desired_fp == "d3" and applied[("TaskSequence", "a")].live_fp == "l3"
    assert applied[("CollectionVariables", "lab")].secrets == {"OSDJoinPassword": "ab12"}
    assert applied[("CollectionVariables", "lab")].extra == {"order": [1, 2]}


def test_salt_is_kept_and_secret_hashes_are_keyed(opener: Opener) -> None:
    store = opener()
    salt = store.salt
    assert len(salt) == 16 and opener().salt == salt
    key = b"k" * 32
    digest = store.secret_hash("P@ssw0rd", key)
    assert digest == opener().secret_hash("P@ssw0rd", key) and "P@ssw0rd" not in digest
    assert store.secret_hash("P@ssw0rd", b"j" * 32) != digest
    assert store.location in (str(store.location),) and store.location


def test_journal_intent_creation_outcome_and_pending(opener: Opener) -> None:
    store, other = opener(), opener()
    seq = store.intent("plan-1", "CreateTaskSequence", "TaskSequence/a", {"match": "A", "existing": ["PS100009"]},
                       apply_id="ap-1")
    assert seq > 0
    assert other.pending() == {"TaskSequence/a"}
    store.created("plan-1", "CreateTaskSequence", "TaskSequence/a", "PS100010", apply_id="ap-1")
    intent = other.pending_intent("TaskSequence/a")
    assert intent is not None and intent.plan_id == "plan-1" and intent.created == "PS100010"
    assert intent.made("A", ["PS100009", "PS100010"]) == "PS100010"
    assert set(other.pending_intents()) == {"TaskSequence/a"}
    store.outcome("plan-1", "CreateTaskSequence", "TaskSequence/a", "skipped", "a dependency failed", apply_id="ap-1")
    assert other.pending() == {"TaskSequence/a"}  # a skipped action never ran: still pending
    store.outcome("plan-1", "CreateTaskSequence", "TaskSequence/a", "applied", None, {"result": "PS100010"},
                  apply_id="ap-1")
    assert other.pending() == set() and other.pending_intent("TaskSequence/a") is None
    phases = [(e.phase, e.outcome, e.apply_id) for e in other.journal("plan-1")]
    assert phases == [("intent", None, "ap-1"), ("created", None, "ap-1"), ("outcome", "skipped", "ap-1"),
                      ("outcome", "applied", "ap-1")]
    assert [e.seq for e in other.journal()] == sorted(e.seq for e in other.journal())


def test_an_interrupted_intent_is_superseded_or_settled(store: StateBackend) -> None:
    store.intent("plan-1", "CreateTaskSequence", "TaskSequence/a", {"match": "A", "existing": []})
    store.intent("plan-2", "UpdateTaskSequence", "TaskSequence/a", {"live_id": "PS100001"})
    intent = store.pending_intent("TaskSequence/a")
    # the later intent keeps what the interrupted one knew of the creation, and the first gets its outcome
    assert intent is not None and intent.plan_id == "plan-2" and intent.match == "A"
    assert [(e.phase, e.outcome) for e in store.journal("plan-1")] == [("intent", None), ("outcome", "superseded")]
    assert not store.settle("TaskSequence/a", "plan-1", "plan-3", "nothing left")  # not the intent pending now
    assert store.settle("TaskSequence/a", "plan-2", "plan-3", "nothing left")
    assert store.pending() == set()
    assert store.journal("plan-2")[-1].outcome == "resolved"


def test_apply_records_and_audit_trail(store: StateBackend) -> None:
    apply_id = store.record_apply("plan-1", {"ref": "main", "sha": "abc", "source": "repo:manifests"},
                                  {"create": 1}, {"applied": 1, "failed": 0, "skipped": 0}, actor="ana (test)",
                                  detail={"location": "repo@abc"})
    failed = store.record_apply("plan-2", {"source": "repo:manifests"}, {"create": 1},
                                {"applied": 0, "failed": 1, "skipped": 0})
    assert apply_id.startswith("ap-") and failed != apply_id
    assert [e.plan_id for e in store.applies()] == ["plan-2", "plan-1"] and len(store.applies(limit=1)) == 1
    record = store.apply_record(apply_id)
    assert record is not None and record.outcome == "ok" and record.detail["who"] == "ana (test)"
    assert record.detail["location"] == "repo@abc" and record.object == "repo:manifests"
    assert store.apply_record(failed).outcome == "failed" and store.apply_record("ap-none") is None  # type: ignore[union-attr]
    store.audit("plan-1", "TaskSequenceDeployment/a-all", {"who": "ana (test)", "size": 5000}, apply_id=apply_id)
    now = time.time()
    store.record_audit([AuditEvent(at=now, event="apply", actor="ana (test)", apply_id=apply_id, plan_id="plan-1"),
                        AuditEvent(at=now, event="action", actor="ana (test)", apply_id=apply_id, plan_id="plan-1",
                                   object="TaskSequence/a", outcome="applied", detail={"changes": ["name"]})])
    store.record_audit([AuditEvent(at=now + 1, event="refused", actor="bo (test)", detail={"why": "blocked"})])
    store.record_audit([])
    events = store.audit_events()
    assert [e.event for e in events] == ["high-risk", "apply", "action", "refused"]
    about = store.audit_events(AuditQuery(object="TaskSequence/a"))
    assert [(e.event, e.object) for e in about] == [("apply", None), ("action", "TaskSequence/a")]
    assert [e.event for e in store.audit_events(AuditQuery(events=("refused",)))] == ["refused"]
    assert {e.event for e in store.audit_events(AuditQuery(apply_id=apply_id))} == {"high-risk", "apply", "action"}
    assert [e.event for e in store.audit_events(AuditQuery(limit=1))] == ["refused"]
    assert [e.event for e in store.audit_events(AuditQuery(since=now + 0.5))] == ["refused"]
    assert store.audit_events(AuditQuery(events=("action",)))[0].detail == {"changes": ["name"]}


def test_pause_and_resume(opener: Opener) -> None:
    store, other = opener(), opener()
    assert store.paused(SITE) is None and store.resume(SITE) is None
    pause = store.pause(SITE, "ana (test)", "change freeze")
    seen = other.paused(SITE)
    assert seen is not None and seen.actor == "ana (test)" and seen.reason == "change freeze" and seen.site == SITE
    assert abs(seen.at - pause.at) < 1
    store.pause(SITE, "bo (test)")  # a second pause replaces the first
    assert other.paused(SITE).actor == "bo (test)"  # type: ignore[union-attr]
    lifted = other.resume(SITE)
    assert lifted is not None and lifted.actor == "bo (test)" and store.paused(SITE) is None


def test_status_is_shared(opener: Opener) -> None:
    store, other = opener(), opener()
    assert store.get_status("tick") is None
    store.put_status("tick", {"outcome": "ok", "sha": "abc"})
    store.put_status("tick", {"outcome": "drift", "sha": "def"})
    assert other.get_status("tick") == {"outcome": "drift", "sha": "def"}


def test_one_writer_per_site_and_unlock_by_id(opener: Opener) -> None:
    store, other = opener(), opener()
    first = store.acquire_lease(SITE, "build-01:101", 30, "controller")
    assert first is not None and first.kind == "controller" and first.expires > first.taken
    assert other.acquire_lease(SITE, "build-02:202", 30, "controller") is None
    assert other.acquire_lease("PS2", "build-02:202", 30) is not None  # another site is another lease
    assert other.lease_holder(SITE) == other.lease(SITE)
    renewed = store.acquire_lease(SITE, "build-01:101", 30, "controller")
    assert renewed is not None and renewed.lease_id == first.lease_id and renewed.token == first.token
    background = other.open_leases()
    try:
        again = background.renew(SITE, first.lease_id, 30)
        assert again is not None and again.expires >= renewed.expires and again.lease_id == first.lease_id
        assert background.renew(SITE, "not-this-one", 30) is None
        assert background.stored(SITE) is not None and background.current(SITE) is not None
    finally:
        background.close()
    assert other.break_lease(SITE, "not-this-one") is None
    assert other.break_lease(SITE, first.lease_id) is not None
    assert other.lease(SITE) is None and other.leases.renew(SITE, first.lease_id, 30) is None
    taken = other.acquire_lease(SITE, "build-02:202", 30, "controller")
    assert taken is not None and taken.token > first.token  # a new grant: a greater fencing token
    other.release_lease(SITE, "build-02:202")
    assert store.lease_holder(SITE) is None


def test_a_lapsed_lease_is_taken_anew(opener: Opener) -> None:
    store, other = opener(), opener()
    first = store.acquire_lease(SITE, "build-01:101", 0.2, "controller")
    assert first is not None
    from tests.conftest import wait_until

    wait_until(lambda: other.lease_holder(SITE) is None, 10, "the lease to lapse")
    assert other.lease(SITE) is not None  # still stored, no longer in force
    taken = other.acquire_lease(SITE, "build-02:202", 30, "controller")
    assert taken is not None and taken.lease_id != first.lease_id and taken.token > first.token


def test_a_writer_whose_lease_was_taken_over_writes_nothing(opener: Opener) -> None:
    """The fencing token: the old writer's next write of the journal, ownership or last applied is refused."""
    writer, standby = opener(), opener()
    lease = writer.acquire_lease(SITE, "build-01:101", 30, "controller")
    assert lease is not None
    writer.intent("plan-1", "CreateTaskSequence", "TaskSequence/a", {"match": "A", "existing": []})
    standby.break_lease(SITE, lease.lease_id)
    # unlocked and not taken: nobody else wrote, so the writer may still finish (its next lease check stops it)
    writer.outcome("plan-1", "CreateTaskSequence", "TaskSequence/a", "applied")
    assert standby.acquire_lease(SITE, "build-02:202", 30, "controller") is not None
    before = len(standby.journal())
    writes: list[Callable[[], object]] = [
        lambda: writer.intent("plan-1", "CreateTaskSequence", "TaskSequence/b"),
        lambda: writer.created("plan-1", "CreateTaskSequence", "TaskSequence/b", "PS100002"),
        lambda: writer.outcome("plan-1", "CreateTaskSequence", "TaskSequence/b", "applied"),
        lambda: writer.settle("TaskSequence/b", "plan-1", "plan-2", "x"),
        lambda: writer.own("TaskSequence", "b", "PS100002"),
        lambda: writer.disown("TaskSequence", "a"),
        lambda: writer.record_applied("TaskSequence", "b", "d", "l"),
        lambda: writer.audit("plan-1", "TaskSequenceDeployment/b", {"who": "x"}),
        lambda: writer.record_apply("plan-1", {}, {}, {}),
    ]
    for write in writes:
        with pytest.raises(LeaseLost, match=rf"site {SITE}: this writer's lease \(fencing token {lease.token}\) was "
                                            r"lost .* now held by build-02:202"):
            write()
    assert len(standby.journal()) == before and standby.owned() == {}
    writer.put_status("standby:build-01:101", {"outcome": "standby"})  # status is not fenced: a standby reports
    # the old writer becomes a standby: it can take the lease again only when the new writer lets it go
    assert writer.acquire_lease(SITE, "build-01:101", 30, "controller") is None
    standby.release_lease(SITE, "build-02:202")
    assert writer.acquire_lease(SITE, "build-01:101", 30, "controller") is not None
    writer.own("TaskSequence", "b", "PS100002")
    assert standby.owned_id("TaskSequence", "b") == "PS100002"


def test_a_newer_schema_is_a_clear_error(opener: Opener, tmp_path: Path) -> None:
    store = opener()
    if isinstance(store, SQLiteStateStore):
        import sqlite3

        with sqlite3.connect(store.path) as db:
            db.execute("PRAGMA user_version = 999")
    else:
        import psycopg

        from reconciler.state.postgres import PostgresStateStore

        assert isinstance(store, PostgresStateStore)
        with psycopg.connect(store.url, password=session_server().password, autocommit=True) as db:
            db.execute("UPDATE reconcile_schema SET version = 999")
    with pytest.raises(StateError, match=r"has state schema version 999; this tool knows up to \d+: upgrade the tool"):
        opener()


# -- every member of the protocol is called above -----------------------------------------------------------


def test_this_suite_calls_every_member_of_the_protocol() -> None:
    members = {name for cls in StateBackend.__mro__ if cls.__module__ == "reconciler.state.protocol"
               for name in vars(cls) if not name.startswith("_")}
    called = {node.attr for node in ast.walk(ast.parse(Path(__file__).read_text())) if isinstance(node, ast.Attribute)}
    assert members - called == set(), "add these StateBackend members to the store suite"


def test_every_store_implements_the_protocol_with_the_same_parameters() -> None:
    import inspect

    from reconciler.state.postgres import PostgresStateStore

    members = {name for cls in StateBackend.__mro__ if cls.__module__ == "reconciler.state.protocol"
               for name in vars(cls) if not name.startswith("_")}
    for store in (SQLiteStateStore, PostgresStateStore):
        for name in members:
            declared, implemented = getattr(StateBackend, name), getattr(store, name)
            if isinstance(declared, property):
                assert isinstance(implemented, property), (store.__name__, name)
                continue
            assert list(inspect.signature(implemented).parameters) == list(inspect.signature(declared).parameters), \
                (store.__name__, name)
