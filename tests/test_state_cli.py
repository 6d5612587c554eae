"""``--state postgresql://…`` and ``state:`` in reconcile.yaml, on the commands people run (in-process CLI).

A real PostgreSQL server on 127.0.0.1 (tests/postgres_fixture.py), skipped with the reason where it cannot run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.postgres_fixture import PostgresServer, session_server

ESTATE = REPO / "tests" / "data" / "estate"
SECRET = {"OSD_TEST_LOCAL_ADMIN_PASSWORD": "state-cli-secret", "NO_COLOR": "1"}


@pytest.fixture
def server() -> PostgresServer:
    return session_server()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copytree(ESTATE, tmp_path / "manifests")
    (tmp_path / "manifests" / "secrets").mkdir(exist_ok=True)
    (tmp_path / "manifests" / "secrets" / "join.txt").write_text("file-secret\n")
    assert run_cli("site", "init", "--demo", cwd=tmp_path).returncode == 0
    return tmp_path


def test_apply_plan_status_and_state_check_on_a_database(work: Path, server: PostgresServer) -> None:
    url = server.create_database()
    env = {**SECRET, **server.env()}
    applied = run_cli("apply", "--yes", "--state", url, cwd=work, env=env)
    assert applied.returncode == 0, applied
    assert not (work / ".reconcile" / "state.db").exists()  # the state went to the database, not a file
    again = run_cli("plan", "--state", url, "--detailed-exitcode", cwd=work, env=env)
    assert again.returncode == 0, again
    status = run_cli("status", "--state", url, "--output", "json", cwd=work, env=env)
    assert status.returncode == 0, status
    history = run_cli("history", "--state", url, cwd=work, env=env)
    assert history.returncode == 0 and "ap-" in history.stdout, history
    check = run_cli("state", "check", "--state", url, "--output", "json", cwd=work, env=env)
    assert check.returncode == 0, check
    document = json.loads(check.stdout)
    assert document["ok"] and document["counts"]["PS1 owned:TaskSequence"] == 2
    backup = run_cli("state", "backup", str(work / "copy.db"), "--state", url, cwd=work, env=env)
    assert backup.returncode == 1 and "pg_dump" in backup.stderr
    for output in (applied, again, status, check, backup):
        assert server.password not in output.stdout + output.stderr


def test_the_state_section_of_reconcile_yaml_names_the_database_and_where_its_password_is(
        work: Path, server: PostgresServer) -> None:
    url = server.create_database()
    (work / "manifests" / "secrets" / "state-db").write_text(server.password + "\n")
    (work / "manifests" / "reconcile.yaml").write_text(
        f"state:\n  url: {url}\n  password:\n    valueFrom: {{file: secrets/state-db}}\n")
    applied = run_cli("apply", "--yes", cwd=work, env={**SECRET, "RECONCILE_STATE_PASSWORD": None})
    assert applied.returncode == 0, applied
    assert not (work / ".reconcile" / "state.db").exists()
    again = run_cli("plan", "--detailed-exitcode", cwd=work, env={**SECRET, "RECONCILE_STATE_PASSWORD": None})
    assert again.returncode == 0, again
    # a manifest may not read the database's password
    (work / "manifests" / "leak.yaml").write_text(
        "apiVersion: configmgr.gitops.io/v1alpha1\nkind: CollectionVariables\nmetadata: {name: leak}\n"
        "spec:\n  collection: {name: OSD Lab}\n  variables:\n  - name: Leak\n    valueFrom: {file: secrets/state-db}\n")
    leaked = run_cli("plan", cwd=work, env={**SECRET, "RECONCILE_STATE_PASSWORD": None})
    assert leaked.returncode == 1 and server.password not in leaked.stdout + leaked.stderr


def test_a_password_in_the_url_or_the_file_is_refused_and_never_shown(work: Path, server: PostgresServer) -> None:
    url = server.create_database()
    with_password = url.replace("reconcile@", "reconcile:Sup3rS3cret@")
    refused = run_cli("plan", "--state", with_password, cwd=work, env=SECRET)
    assert refused.returncode == 1 and "holds a password" in refused.stderr and "RECONCILE_STATE_PASSWORD" in \
        refused.stderr
    assert "Sup3rS3cret" not in refused.stdout + refused.stderr
    (work / "manifests" / "reconcile.yaml").write_text(f"state:\n  url: {url}\n  password: Sup3rS3cret\n")
    plain = run_cli("plan", cwd=work, env=SECRET)
    assert plain.returncode == 1 and "reconcile.yaml:3" in plain.stderr and "state.password" in plain.stderr
    assert "plaintext credential" in plain.stderr and "Sup3rS3cret" not in plain.stdout + plain.stderr
    (work / "manifests" / "reconcile.yaml").write_text("state:\n  url: /var/lib/reconcile/state.db\n")
    not_url = run_cli("plan", cwd=work, env=SECRET)
    assert not_url.returncode == 1 and "reconcile.yaml:2" in not_url.stderr and "postgresql://" in not_url.stderr


def test_a_database_without_this_sites_state_is_refused_when_the_site_has_objects(work: Path,
                                                                                  server: PostgresServer) -> None:
    env = {**SECRET, **server.env()}
    assert run_cli("apply", "--yes", cwd=work, env=env).returncode == 0  # objects on the site, state in a file
    url = server.create_database()
    refused = run_cli("plan", "--state", url, cwd=work, env=env)
    assert refused.returncode == 1, refused
    assert "holds nothing for site PS1, but site PS1" in refused.stderr and "--new-state" in refused.stderr
    started = run_cli("plan", "--state", url, "--new-state", cwd=work, env=env)
    assert started.returncode in (0, 1) and "holds nothing" not in started.stderr
