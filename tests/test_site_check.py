"""``reconcile site check``: first contact with a real AdminService peer (``site serve`` over HTTPS with NTLM), and
the facts of an embedded site file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.site import create_site
from tests.conftest import CliRun, run_cli
from tests.serve_fixture import ADMIN, ADMIN_PASSWORD, DENIED, DENIED_PASSWORD, Served, serve_site


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Served]:
    with serve_site(tmp_path / "peer", hide_methods=frozenset({"SetSequence"})) as served:
        yield served


def _check(peer: Served, cwd: Path, *args: str, user: str = ADMIN, password: str = ADMIN_PASSWORD) -> CliRun:
    return run_cli("site", "check", "--site", peer.url.rstrip("/"), "--ca-bundle", str(peer.ca), *args, cwd=cwd,
                   env={"RECONCILE_SITE_USERNAME": user, "RECONCILE_SITE_PASSWORD": password})


def test_an_administrator_learns_who_they_are_the_site_and_that_they_may_write(peer: Served, tmp_path: Path) -> None:
    result = _check(peer, tmp_path)
    assert result.returncode == 0, result
    out = result.stdout
    assert f"site {peer.url.rstrip('/')}: reachable" in out
    assert f"authentication: Negotiate as {ADMIN} (password from RECONCILE_SITE_PASSWORD)" in out
    assert f"you are: {ADMIN} (from the site (SMS_Admin)); roles: Full Administrator" in out
    assert "site: PS1 Reconcile test site, version 5.00.9132.1000, build 9132 (from the site (SMS_Site))" in out
    assert "SMS_TaskSequencePackage.ImportSequence" in out and "SMS_TaskSequencePackage.SetSequence" not in out
    assert "may write: yes: by role (Full Administrator, from SMS_Admin)" in out
    assert "WinRM: not configured" in out
    assert ADMIN_PASSWORD not in result.stdout + result.stderr


def test_the_json_report_carries_the_same_facts(peer: Served, tmp_path: Path) -> None:
    result = _check(peer, tmp_path, "--output", "json")
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    assert report["kind"] == "AdminService" and report["ok"] is True
    assert report["account"] == ADMIN and report["roles"] == ["Full Administrator"]
    assert report["site"] == {"code": "PS1", "name": "Reconcile test site", "version": "5.00.9132.1000",
                              "build": 9132, "from": "the site (SMS_Site)"}
    assert "SMS_TaskSequencePackage" in report["metadata"]["classes"]
    assert all(a["readable"] for a in report["access"]) and report["may_write"] == "yes"


def test_read_only_says_no_writes_whatever_the_role(peer: Served, tmp_path: Path) -> None:
    result = _check(peer, tmp_path, "--read-only")
    assert "may write: no: the site is opened read-only (--read-only)" in result.stdout, result


def test_a_user_who_is_no_administrator_is_told_what_is_missing(peer: Served, tmp_path: Path) -> None:
    result = _check(peer, tmp_path, user=DENIED, password=DENIED_PASSWORD)
    assert result.returncode == 1, result
    out = result.stdout
    assert DENIED in out and "may write: no" in out
    assert "Access denied" in out and "a role such as Operating System Deployment Manager" in out
    assert DENIED_PASSWORD not in out + result.stderr


def test_a_wrong_password_says_what_authentication_was_tried(peer: Served, tmp_path: Path) -> None:
    result = _check(peer, tmp_path, password="not-the-password")
    assert result.returncode == 1, result
    assert "HTTP 401" in result.stdout and f"tried Negotiate as {ADMIN}" in result.stdout
    assert "not-the-password" not in result.stdout + result.stderr


def test_an_embedded_site_says_what_is_true_of_a_file(tmp_path: Path) -> None:
    create_site(tmp_path / "site.db", demo=True).close()
    result = run_cli("site", "check", "--site", "site.db", cwd=tmp_path)
    assert result.returncode == 0, result
    assert "embedded site site.db: intact" in result.stdout
    assert "site PS1: an embedded site (a SQLite file; no AdminService, no WinRM)" in result.stdout
    assert "may write: yes" in result.stdout
    read_only = run_cli("site", "check", "--site", "site.db", "--read-only", "--output", "json", cwd=tmp_path)
    document = json.loads(read_only.stdout)
    assert document["ok"] is True and document["counts"]["distribution points"] == 4  # the integrity check as before
    assert document["report"]["kind"] == "embedded site" and document["report"]["may_write"] == "no"
