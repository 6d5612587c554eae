"""A throwaway MIT Kerberos realm, and ``reconcile site serve`` accepting Kerberos in a process of its own.

:func:`kerberos_realm` starts a KDC with k5test (Debian's ``krb5-kdc``; its port on 127.0.0.1 only) for the
realm ``CORP.CONTOSO.COM``, whose first label is the domain the server maps Kerberos principals to
(``osdadmin@CORP.CONTOSO.COM`` is the served account ``CORP\\osdadmin``). It holds the user, the service
principal ``HTTP/localhost`` (the client derives the SPN from the URL's host, and the server's certificate
names ``localhost``) with its keys in a keytab, and the user's ticket in a cache from ``kinit``.

:func:`serve_with_kerberos` runs ``reconcile site serve --keytab … --refuse-ntlm`` as a real process:
MIT Kerberos reads ``KRB5_CONFIG``, ``KRB5CCNAME`` and ``KRB5_KTNAME`` from the environment of the process,
so the server keeps the keytab in its own environment while the client's commands run in this process with
:meth:`Realm.client_env` laid over the environment for the length of a command (``tests.conftest.run_cli``
puts it back).

:func:`require_kerberos` skips a test, naming what is missing, on a machine without the KDC or python-gssapi;
CI sets ``RECONCILE_TESTS_REQUIRE_KERBEROS=1`` (``.ci/run``), which turns that skip into a failure, so the
Kerberos tests cannot silently stop running there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from reconciler.site import create_site
from tests.conftest import wait_until

REALM = "CORP.CONTOSO.COM"
USER = "osdadmin"
USER_PRINCIPAL = f"{USER}@{REALM}"
#: The served account: the realm's first label is the domain Kerberos principals are mapped to.
LOGON = f"CORP\\{USER}"
#: The account's password: for kinit, for the server's NTLM account, and for a client sending NTLM. No space:
#: kadmin.local's -q splits its query at spaces, even quoted ones.
PASSWORD = "Kerber0s:0nly-p@ss"
SERVICE_PRINCIPAL = f"HTTP/localhost@{REALM}"

#: Set (CI does) to fail instead of skipping when the KDC or python-gssapi is missing.
REQUIRED_VARIABLE = "RECONCILE_TESTS_REQUIRE_KERBEROS"

_SYSTEM_PATHS = ("/usr/sbin", "/sbin", "/usr/bin")
_TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "krb5-config")
_INSTALL = ("Debian: apt-get install krb5-kdc krb5-admin-server krb5-user libkrb5-dev, then "
            "pip install -e '.[test,kerberos]'")


def missing() -> str | None:
    """What this machine lacks for a Kerberos test, or None."""
    for module, package in (("gssapi", "python-gssapi"), ("krb5", "krb5 (pyspnego[kerberos])")):
        if find_spec(module) is None:
            return f"{package} is not installed ({_INSTALL})"
    if find_spec("k5test") is None:
        return f"k5test is not installed ({_INSTALL})"
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SYSTEM_PATHS])
    absent = [tool for tool in _TOOLS if shutil.which(tool, path=search) is None]
    if absent:
        return f"MIT Kerberos tools are missing: {', '.join(absent)} ({_INSTALL})"
    return None


def require_kerberos() -> None:
    reason = missing()
    if reason is None:
        return
    if os.environ.get(REQUIRED_VARIABLE):
        pytest.fail(f"{REQUIRED_VARIABLE} is set but Kerberos cannot be tested: {reason}")
    pytest.skip(f"Kerberos test skipped: {reason}")


@dataclass(frozen=True)
class Realm:
    name: str
    keytab: Path  # HTTP/localhost's keys, for the server's --keytab
    ccache: Path  # the user's ticket, from kinit
    krb5_config: Path
    folder: Path  # k5test's folder: its replay cache and logs

    def client_env(self, ccache: str | None = None) -> dict[str, str | None]:
        """A client's Kerberos environment: this realm, the user's ticket cache (or ``ccache``), and no client
        keytab or site password that could stand in for the ticket."""
        return {"KRB5_CONFIG": str(self.krb5_config),
                "KRB5CCNAME": f"FILE:{self.ccache}" if ccache is None else ccache,
                "KRB5_CLIENT_KTNAME": f"FILE:{self.folder / 'no-client-keytab'}", "KRB5_KTNAME": None,
                "RECONCILE_SITE_USERNAME": None, "RECONCILE_SITE_PASSWORD": None, "RECONCILE_SITE_TOKEN": None,
                "SSL_CERT_FILE": None}

    def server_env(self) -> dict[str, str]:
        """The server's: this realm and a replay cache in the realm's folder; no ticket (an acceptor needs only
        the keytab, which ``--keytab`` names)."""
        return {"KRB5_CONFIG": str(self.krb5_config), "KRB5RCACHEDIR": str(self.folder),
                "KRB5CCNAME": f"FILE:{self.folder / 'server-has-no-ticket'}"}


def _free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (the KDC listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


@contextmanager
def kerberos_realm(folder: Path) -> Iterator[Realm]:
    """The realm, its KDC running on 127.0.0.1, until the block ends."""
    import k5test

    folder.mkdir(parents=True, exist_ok=True)
    # The KDC listens on 127.0.0.1 only (kdc_listen; k5test's kdc_ports would bind every interface), and the
    # client finds it there; "localhost" is in this realm without DNS, so HTTP/localhost is what is asked for.
    krb5_conf = {"libdefaults": {"dns_canonicalize_hostname": "false", "rdns": "false", "dns_lookup_realm": "false"},
                 "realms": {"$realm": {"kdc": "127.0.0.1:$port0", "admin_server": None, "kpasswd_server": None}},
                 "domain_realm": {"localhost": "$realm"}}
    kdc_conf = {"realms": {"$realm": {"kdc_ports": None, "kdc_tcp_ports": None, "kdc_listen": "127.0.0.1:$port0",
                                      "kdc_tcp_listen": "127.0.0.1:$port0"}}}
    realm: Any = None
    for attempt in range(5):
        realm = k5test.K5Realm(realm=REALM, portbase=_free_port(), krb5_conf=krb5_conf, kdc_conf=kdc_conf,
                               create_user=False, create_host=False, get_creds=False, start_kdc=False)
        try:
            realm.start_kdc()  # k5test waits until the KDC says it is listening
            break
        except Exception:  # the port was taken meanwhile: another one
            realm.stop()
            if attempt == 4:
                raise
    try:
        realm.addprinc(USER_PRINCIPAL, PASSWORD)
        realm.addprinc(SERVICE_PRINCIPAL)
        keytab = folder / "http.keytab"
        realm.extract_keytab(SERVICE_PRINCIPAL, str(keytab))
        realm.kinit(USER_PRINCIPAL, PASSWORD)
        yield Realm(REALM, keytab, Path(realm.ccache), Path(realm.env["KRB5_CONFIG"]), Path(realm.tmpdir))
    finally:
        realm.stop()


@dataclass
class KerberosServer:
    """``reconcile site serve`` in its own process, reached as ``https://localhost:PORT/AdminService``."""

    process: subprocess.Popen[str]
    url: str
    ca: Path
    site_path: Path
    request_log: Path
    stderr: Path
    lines: list[str] = field(default_factory=list)

    def requests(self) -> list[dict[str, Any]]:
        if not self.request_log.exists():
            return []
        return [json.loads(line) for line in self.request_log.read_text(encoding="utf-8").splitlines() if line]

    def writes(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]


def _read_lines(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)


@contextmanager
def serve_with_kerberos(folder: Path, realm: Realm, *options: str) -> Iterator[KerberosServer]:
    """The server over a new demo site in ``folder``: Kerberos with the realm's keytab, NTLM refused as
    ConfigMgr 2509 and later do, and ``options``; stopped with SIGTERM when the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    site_path = folder / "site.db"
    create_site(site_path, demo=True).close()
    request_log, errors = folder / "requests.jsonl", folder / "serve.stderr"
    command = [sys.executable, "-m", "reconciler", "site", "serve", "--site", str(site_path),
               "--listen", "127.0.0.1:0", "--tls-dir", str(folder / "tls"), "--user", LOGON,
               "--hostname", "localhost", "--keytab", str(realm.keytab), "--refuse-ntlm",
               "--request-log", str(request_log), *options]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "RECONCILE_"))}
    environment.update(realm.server_env(), RECONCILE_SERVE_PASSWORD=PASSWORD, PYTHONUNBUFFERED="1")
    with errors.open("w") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                   text=True, env=environment, cwd=folder)
    lines: list[str] = []
    threading.Thread(target=_read_lines, args=(process, lines), daemon=True).start()
    try:
        def announced() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"reconcile site serve exited {process.returncode}: "
                                     f"{errors.read_text()[-2000:]}")
            return any("serving site" in line for line in lines)

        wait_until(announced, 60, "reconcile site serve to announce its URL")
        served = next(line for line in lines if "serving site" in line).split(" at ")[-1].strip()
        port = served.split("127.0.0.1:", 1)[1].split("/", 1)[0]
        yield KerberosServer(process, f"https://localhost:{port}/AdminService", folder / "tls" / "ca.pem",
                             site_path, request_log, errors, lines)
    finally:
        process.terminate()  # SIGTERM: the server stops cleanly
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
