"""Kerberos to the AdminService, end to end: ConfigMgr 2509 and later refuse NTLM, so the ticket from ``kinit``
is what must work.

A throwaway MIT realm (tests/kerberos_fixture.py) holds the user ``osdadmin@CORP.CONTOSO.COM`` with a ticket
in a cache and ``HTTP/localhost`` in a keytab; ``reconcile site serve --keytab … --refuse-ntlm`` runs as its own
process with that keytab, and the normal command line (``site check``, ``plan``, an apply) talks to it over
HTTPS with ``--auth negotiate`` (the default) or ``--auth kerberos``. Skipped, with the reason, where the KDC or
python-gssapi is missing; CI installs both and requires these tests to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.site.embedded import EmbeddedSite
from reconciler.site.serve import REJECTING_NTLM
from tests.conftest import REPO, CliRun, run_cli
from tests.kerberos_fixture import (
    LOGON,
    PASSWORD,
    USER_PRINCIPAL,
    KerberosServer,
    Realm,
    kerberos_realm,
    require_kerberos,
    serve_with_kerberos,
)
from tests.test_reconcile_e2e import EXAMPLE_SECRETS

FILE_SECRET = "kerberos-file-secret"


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    require_kerberos()
    with kerberos_realm(tmp_path_factory.mktemp("realm")) as made:
        yield made


@pytest.fixture
def server(realm: Realm, tmp_path: Path) -> Iterator[KerberosServer]:
    with serve_with_kerberos(tmp_path / "serve", realm) as served:
        yield served


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The example repository, with its secrets, as tests/test_reconcile_e2e.py applies it."""
    work = tmp_path / "work"
    shutil.copytree(REPO / "manifests", work / "manifests")
    (work / "manifests" / "secrets").mkdir(exist_ok=True)
    (work / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text(FILE_SECRET + "\n")
    # reconcile site serve takes sequence steps, schedules and masked variables over REST; a real site: WinRM.
    (work / "manifests" / "reconcile.yaml").write_text("site:\n  restUnproven: true\n")
    return work


def reconcile(server: KerberosServer, env: dict[str, str | None], *args: str, cwd: Path | None = None,
              url: str | None = None) -> CliRun:
    return run_cli(*args, "--site", url or server.url, "--ca-bundle", str(server.ca), cwd=cwd,
                   env={**EXAMPLE_SECRETS, **env, "NO_COLOR": "1"})


def authenticated_users(server: KerberosServer) -> set[str]:
    return {r["user"] for r in server.requests() if r["status"] != 401}


def live_names(server: KerberosServer) -> set[str]:
    with EmbeddedSite(server.site_path) as console:
        live = console.read()
    return {t.name for t in live.task_sequences.values()} | {d.name for d in live.deployments.values()}


def one_line_error(run: CliRun) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), run
    assert "Traceback" not in run.stderr and PASSWORD not in run.stdout + run.stderr
    return lines[0]


@pytest.mark.parametrize("auth", [(), ("--auth", "kerberos")], ids=["negotiate-by-default", "kerberos"])
def test_site_check_authenticates_with_the_ticket_from_kinit_and_names_the_user(
        realm: Realm, server: KerberosServer, auth: tuple[str, ...]) -> None:
    checked = reconcile(server, realm.client_env(), "site", "check", *auth)
    assert checked.returncode == 0, checked
    assert f"you are: {LOGON}" in checked.stdout, checked
    assert "Kerberos" in checked.stdout.split("authentication:", 1)[1].splitlines()[0], checked
    # Every answered request was Kerberos (the server logs the client's principal), none NTLM.
    assert authenticated_users(server) == {USER_PRINCIPAL}
    assert not [r for r in server.requests() if r["reason"] == REJECTING_NTLM]


def test_the_examples_apply_over_kerberos_and_the_next_plan_is_empty(
        realm: Realm, server: KerberosServer, work: Path) -> None:
    env = realm.client_env()
    first = reconcile(server, env, "plan", "--detailed-exitcode", cwd=work)
    assert first.returncode == 2, first
    applied = reconcile(server, env, "--yes", cwd=work)
    assert applied.returncode == 0 and "28 applied, 0 failed, 0 skipped" in applied.stdout, applied
    again = reconcile(server, env, "plan", "--detailed-exitcode", cwd=work)
    assert again.returncode == 0 and "No changes" in again.stdout, again
    with EmbeddedSite(server.site_path) as console:
        live = console.read()
    assert len(live.task_sequences) == 6 and len(live.deployments) == 6
    assert authenticated_users(server) == {USER_PRINCIPAL}
    said = "".join(r.stdout + r.stderr for r in (first, applied, again))
    for secret in (*EXAMPLE_SECRETS.values(), FILE_SECRET, PASSWORD):
        assert secret not in said


@pytest.mark.parametrize("ccache", ["", "FILE:{folder}/no-such-cache"], ids=["empty-KRB5CCNAME", "empty-cache"])
def test_without_a_ticket_the_error_says_kerberos_had_none_and_nothing_is_applied(
        realm: Realm, server: KerberosServer, work: Path, ccache: str) -> None:
    before = live_names(server)
    env = realm.client_env(ccache.format(folder=work))
    line = one_line_error(reconcile(server, env, "--yes", cwd=work))
    assert "Kerberos" in line and "no valid Kerberos ticket" in line and "kinit" in line, line
    assert "NTLM" in line, line  # why nothing else was tried: ConfigMgr 2509 and later refuse NTLM
    assert server.writes() == [] and live_names(server) == before


def test_without_a_ticket_negotiate_falls_back_to_ntlm_which_the_site_rejects_in_one_line(
        realm: Realm, server: KerberosServer, work: Path) -> None:
    before = live_names(server)
    env = {**realm.client_env(""), "RECONCILE_SITE_USERNAME": LOGON, "RECONCILE_SITE_PASSWORD": PASSWORD}
    line = one_line_error(reconcile(server, env, "--yes", cwd=work))
    assert "Kerberos" in line and "the site rejects NTLM" in line and "kinit" in line, line
    assert server.writes() == [] and live_names(server) == before
    assert [r for r in server.requests() if r["reason"] == REJECTING_NTLM], "the server refused NTLM"
    assert authenticated_users(server) == set()


def test_ntlm_to_a_site_that_rejects_it_says_the_site_rejects_ntlm(
        realm: Realm, server: KerberosServer, work: Path) -> None:
    env = {**realm.client_env(), "RECONCILE_SITE_USERNAME": LOGON, "RECONCILE_SITE_PASSWORD": PASSWORD}
    line = one_line_error(reconcile(server, env, "plan", "--auth", "ntlm", cwd=work))
    assert "the site rejects NTLM" in line and "kinit" in line, line
    assert [r for r in server.requests() if r["reason"] == REJECTING_NTLM]
    assert authenticated_users(server) == set()


def test_a_url_naming_the_ip_address_is_told_the_kdc_knows_no_such_service_principal(
        realm: Realm, server: KerberosServer, work: Path) -> None:
    # The client asks for HTTP/<the URL's host>: the certificate covers 127.0.0.1, the realm has no such SPN.
    by_address = server.url.replace("//localhost:", "//127.0.0.1:")
    line = one_line_error(reconcile(server, realm.client_env(), "plan", cwd=work, url=by_address))
    assert "the KDC knows no service principal HTTP/127.0.0.1" in line and "not an IP address" in line, line
    assert server.requests() and authenticated_users(server) == set()


def test_a_password_for_user_at_realm_gets_its_own_kerberos_ticket_without_kinit(
        realm: Realm, server: KerberosServer, work: Path) -> None:
    # What the NTLM refusal advises when no ticket cache is at hand (a service account in CI).
    env = {**realm.client_env(f"FILE:{work / 'no-ticket'}"), "RECONCILE_SITE_USERNAME": USER_PRINCIPAL,
           "RECONCILE_SITE_PASSWORD": PASSWORD}
    planned = reconcile(server, env, "plan", "--detailed-exitcode", cwd=work)
    assert planned.returncode == 2 and "to create" in planned.stdout, planned
    assert PASSWORD not in planned.stdout + planned.stderr
    assert authenticated_users(server) == {USER_PRINCIPAL}
    assert not [r for r in server.requests() if r["reason"] == REJECTING_NTLM]


def test_without_kerberos_support_in_python_the_error_says_which_extra_to_install(
        realm: Realm, server: KerberosServer, work: Path) -> None:
    # A real process: whether pyspnego has its Kerberos provider is settled when it is first imported.
    # ``pip install configmgr-ts-reconciler`` without the kerberos extra has no krb5 module.
    program = "import sys; sys.modules['krb5'] = None; from reconciler.cli import main; main()"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "RECONCILE_"))}
    env.update({k: v for k, v in realm.client_env().items() if v is not None}, NO_COLOR="1")
    ran = subprocess.run([sys.executable, "-c", program, "plan", "--site", server.url, "--ca-bundle",
                          str(server.ca)], cwd=work, env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    line = one_line_error(CliRun([], ran.returncode, ran.stdout, ran.stderr))
    assert "no Kerberos support" in line and "configmgr-ts-reconciler[kerberos]" in line, line
