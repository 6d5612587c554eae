"""A throwaway PostgreSQL server on 127.0.0.1 for the state store's tests and ``bench/ha.py``.

The server binaries come from Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``). PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` user, in a folder of its own that this
module creates and removes. Password authentication (scram-sha-256) is on, as on a real server: clients give the
password the way the product reads it (``RECONCILE_STATE_PASSWORD``), never in the URL.

:func:`require_postgres` skips a test, naming what is missing, on a machine without the binaries or psycopg; CI
sets ``RECONCILE_TESTS_REQUIRE_POSTGRES=1`` (``.ci/run``), which turns that skip into a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

#: Set (CI does) to fail instead of skipping when PostgreSQL cannot be started here.
REQUIRED_VARIABLE = "RECONCILE_TESTS_REQUIRE_POSTGRES"
_INSTALL = "Debian: apt-get install postgresql; pip install -e '.[test]'"
USER = "reconcile"


def binaries() -> Path | None:
    """The newest PostgreSQL server's bin folder on this machine."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def missing() -> str | None:
    """What this machine lacks for a PostgreSQL test, or None."""
    if find_spec("psycopg") is None or find_spec("psycopg_pool") is None:
        return f"psycopg or psycopg_pool is not installed ({_INSTALL})"
    if binaries() is None:
        return f"the PostgreSQL server is not installed: no /usr/lib/postgresql/*/bin/pg_ctl ({_INSTALL})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as (useradd postgres)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One server in a folder of its own: start, stop (fast shutdown), restart, and a database per test."""

    def __init__(self, folder: Path) -> None:
        self.bin = binaries()
        assert self.bin is not None
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)
        self._created = 0
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_postgres:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=self.folder)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        os.chmod(pwfile, 0o600)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
                  "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync")
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.folder}'\nfsync = off\nsynchronous_commit = off\n"
                       "full_page_writes = off\nmax_connections = 200\nshared_buffers = 64MB\n")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                  "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        """What a client process needs besides the URL: the password, as the product reads it."""
        return {"RECONCILE_STATE_PASSWORD": self.password}

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        self._created += 1
        name = f"t{os.getpid()}_{self._created}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url(), password=self.password, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextmanager
def postgres_server(folder: Path | None = None) -> Iterator[PostgresServer]:
    """A running server until the block ends; its folder is removed after."""
    own = folder is None
    base = Path(tempfile.mkdtemp(prefix="reconcile-pg-")) if folder is None else folder
    if base.exists() and os.geteuid() == 0:
        os.chmod(base, 0o755)
    server = PostgresServer(base / "pg")
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.folder, ignore_errors=True)
        if own:
            shutil.rmtree(base, ignore_errors=True)


def wait_for_server(server: PostgresServer, timeout: float = 30) -> None:
    """Until the server accepts connections (after a restart)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.url(), password=server.password, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def require_postgres() -> None:
    reason = missing()
    if reason is None:
        return
    import pytest

    if os.environ.get(REQUIRED_VARIABLE):
        pytest.fail(f"{REQUIRED_VARIABLE} is set but PostgreSQL cannot be tested: {reason}")
    pytest.skip(f"PostgreSQL test skipped: {reason}")


_SERVER: list[PostgresServer] = []


def session_server() -> PostgresServer:
    """The test session's one server, started on first use (a test that skips never starts it)."""
    require_postgres()
    if not _SERVER:
        context = postgres_server()
        server = context.__enter__()
        import atexit

        atexit.register(context.__exit__, None, None, None)
        _SERVER.append(server)
    return _SERVER[0]
