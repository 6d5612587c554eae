"""What only the PostgreSQL state store does: schema upgrades, many sites in one database, the database's clock,
retries across a server restart, and one winner among writers racing for a lease.

A real server on 127.0.0.1 (tests/postgres_fixture.py); skipped with the reason where it cannot run here, required
in CI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from reconciler.errors import TransientError
from reconciler.state import StateError, StateUnreachable, open_state
from reconciler.state.postgres import MIGRATIONS, PostgresStateStore
from tests.postgres_fixture import PostgresServer, session_server, wait_for_server


@pytest.fixture
def server() -> PostgresServer:
    return session_server()


@pytest.fixture
def url(server: PostgresServer) -> str:
    return server.create_database()


@pytest.fixture
def stores(server: PostgresServer, url: str) -> Iterator[list[PostgresStateStore]]:
    opened: list[PostgresStateStore] = []
    yield opened
    for store in opened:
        store.close()


def _open(server: PostgresServer, url: str, opened: list[PostgresStateStore], site: str = "PS1",
          **options: object) -> PostgresStateStore:
    store = PostgresStateStore(url, site, server.password, **options)  # type: ignore[arg-type]
    opened.append(store)
    return store


def test_the_schema_is_created_on_first_use_and_upgraded_in_order(server: PostgresServer, url: str,
                                                                   stores: list[PostgresStateStore]) -> None:
    import psycopg

    with psycopg.connect(url, password=server.password, autocommit=True) as db:
        # a database an earlier version made: only the first migration
        db.execute("CREATE TABLE reconcile_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
        db.execute(MIGRATIONS[0])
        db.execute("INSERT INTO reconcile_schema VALUES (1, 1)")
        db.execute("INSERT INTO reconcile_journal (site, plan_id, at, phase, action, object) "
                   "VALUES ('PS1', 'plan-0', 1, 'intent', 'Create', 'TaskSequence/old')")
    store = _open(server, url, stores)
    with psycopg.connect(url, password=server.password, autocommit=True) as db:
        assert db.execute("SELECT version FROM reconcile_schema").fetchone()[0] == len(MIGRATIONS)
    assert [e.object for e in store.journal()] == ["TaskSequence/old"]  # kept across the upgrade
    assert store.journal()[0].apply_id is None
    assert store.pause("PS1", "ana (test)").actor == "ana (test)"  # a table of the second migration


def test_controllers_starting_together_create_the_schema_once(server: PostgresServer, url: str,
                                                              stores: list[PostgresStateStore]) -> None:
    errors: list[BaseException] = []
    lock = threading.Lock()

    def start() -> None:
        try:
            store = PostgresStateStore(url, "PS1", server.password)
            with lock:
                stores.append(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({store.salt for store in stores}) == 1  # one site row, one salt


def test_one_database_serves_several_sites_apart(server: PostgresServer, url: str,
                                                 stores: list[PostgresStateStore]) -> None:
    one, two = _open(server, url, stores, "PS1"), _open(server, url, stores, "CM2")
    one.own("TaskSequence", "a", "PS100001")
    one.intent("plan-1", "CreateTaskSequence", "TaskSequence/a")
    one.put_status("tick", {"outcome": "ok"})
    assert two.owned() == {} and two.pending() == set() and two.journal() == [] and two.get_status("tick") is None
    assert one.salt != two.salt
    assert one.counts() == {"owned:TaskSequence": 1, "journal entries": 1, "unfinished actions (pending)": 1}


def test_a_site_the_database_holds_nothing_for_is_refused_unless_created(server: PostgresServer, url: str) -> None:
    with pytest.raises(StateError, match=r"holds nothing for site PS1"):
        open_state(url, site="PS1", password=server.password, create=False)
    open_state(url, site="PS1", password=server.password).close()
    open_state(url, site="PS1", password=server.password, create=False).close()


def test_the_lease_runs_on_the_database_clock_not_the_hosts(server: PostgresServer, url: str,
                                                            stores: list[PostgresStateStore],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = _open(server, url, stores)
    real = time.time()
    monkeypatch.setattr(time, "time", lambda: real + 3600)  # this host's clock is an hour ahead
    lease = store.acquire_lease("PS1", "build-01:101", 30, "controller")
    assert lease is not None
    assert abs(lease.taken - real) < 60 and abs(lease.expires - (lease.taken + 30)) < 0.01
    assert store.lease_holder("PS1") == lease  # in force by the database's clock, whatever this host says


def test_writers_racing_for_a_free_lease_one_wins(server: PostgresServer, url: str,
                                                  stores: list[PostgresStateStore]) -> None:
    racers = [_open(server, url, stores) for _ in range(5)]
    start = threading.Barrier(len(racers))
    won: list[object] = []

    def race(index: int) -> None:
        start.wait()
        lease = racers[index].acquire_lease("PS1", f"build-0{index}:{100 + index}", 30, "controller")
        if lease is not None:
            won.append(lease)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_a_server_restart_is_retried_and_a_server_gone_for_long_is_transient(server: PostgresServer, url: str,
                                                                            stores: list[PostgresStateStore]) -> None:
    store = _open(server, url, stores)
    store.own("TaskSequence", "a", "PS100001")
    server.restart()  # every pooled connection is now dead
    assert store.owned_id("TaskSequence", "a") == "PS100001"  # retried on a new connection
    store.own("TaskSequence", "b", "PS100002")
    brief = _open(server, url, stores, retry_seconds=1.0)
    server.stop()
    try:
        with pytest.raises(StateUnreachable, match=r"state store postgresql://reconcile@127\.0\.0\.1:\d+/\w+ cannot "
                                                   r"be reached: .* \(tried \d+ times in \d+ s\)") as unreachable:
            brief.own("TaskSequence", "c", "PS100003")
        assert isinstance(unreachable.value, TransientError) and server.password not in str(unreachable.value)
    finally:
        server.start()
        wait_for_server(server)
    assert store.owned() == {("TaskSequence", "a"): "PS100001", ("TaskSequence", "b"): "PS100002"}


def test_a_wrong_password_or_unreachable_server_is_one_clear_error(server: PostgresServer, url: str) -> None:
    with pytest.raises(StateError, match=r"state store postgresql://reconcile@127\.0\.0\.1:\d+/\w+ cannot be used: "
                                         r".*password authentication failed.*RECONCILE_STATE_PASSWORD"):
        open_state(url, site="PS1", password="not-the-password")
    with pytest.raises(StateError, match="names no database"):
        open_state(f"postgresql://reconcile@127.0.0.1:{server.port}", site="PS1", password=server.password)
    with pytest.raises(StateError, match=r"holds a password") as refused:
        open_state(f"{url}?password=hunter2hunter2", site="PS1")
    assert "hunter2" not in str(refused.value)
