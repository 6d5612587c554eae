"""``reconcile site serve`` in this process, for tests that need a real AdminService peer.

``served`` (a pytest fixture; import it into a test module) starts the server over a demo embedded site on
127.0.0.1 with a free port and a fresh CA, and stops it after the test. ``serve_site()`` does the same with
options (hidden methods, NTLM refused, …). Speak to it with :meth:`Served.client`: an httpx client that
trusts the server's CA and authenticates with Negotiate through pyspnego (NTLM wrapped in SPNEGO by default,
raw NTLM with ``protocol="ntlm"``), sending the TLS channel binding of the server's certificate, the way a
Windows client with Extended Protection does. Nothing here uses the product's own AdminService client.

The accounts are test accounts; their passwords exist only in this file and must never show up in a response
or in the server's request log (tests check that).
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import spnego
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from spnego.channel_bindings import GssChannelBindings

from reconciler.site import create_site
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.serve import Account, AdminServiceServer, RequestLog, ServeConfig

ADMIN = "CORP\\svc-reconcile"
ADMIN_PASSWORD = "Adm1n: p@ss wörd"  # a ':' and a space: the server's account file must cope
DENIED = "CORP\\jdoe"
DENIED_PASSWORD = "Jd0e-no-role-pass"


def channel_binding(certificate: Path) -> GssChannelBindings:
    """RFC 5929 tls-server-end-point of the first certificate in a PEM file (what a client computes from the
    certificate the server presented)."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


class NegotiateAuth(httpx.Auth):
    """HTTP Negotiate (RFC 4559) with pyspnego: every leg on the client's one keep-alive connection."""

    def __init__(self, username: str, password: str, bindings: GssChannelBindings | None,
                 protocol: str = "negotiate") -> None:
        self.username, self.password, self.bindings, self.protocol = username, password, bindings, protocol

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        context = spnego.client(self.username, self.password, hostname="localhost", service="HTTP",
                                protocol=self.protocol, channel_bindings=self.bindings)
        token = context.step()
        while True:
            request.headers["Authorization"] = "Negotiate " + base64.b64encode(token or b"").decode()
            response = yield request
            header = response.headers.get("WWW-Authenticate", "")
            if response.status_code != 401 or not header.startswith("Negotiate "):
                if header.startswith("Negotiate ") and not context.complete:
                    context.step(base64.b64decode(header.split()[1]))  # the server's last (mutual) token
                return
            token = context.step(base64.b64decode(header.split()[1]))


@dataclass
class Served:
    server: AdminServiceServer
    site_path: Path
    responses: list[str] = field(default_factory=list)  # every body a client of this fixture received

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def wmi(self) -> str:
        return self.server.url + "wmi/"

    @property
    def ca(self) -> Path:
        return self.server.tls.ca

    @property
    def tls_context(self) -> ssl.SSLContext:
        """Trusts the server's CA only (what --ca-bundle does)."""
        return ssl.create_default_context(cafile=str(self.ca))

    @property
    def log(self) -> RequestLog:
        return self.server.request_log

    def client(self, username: str = ADMIN, password: str = ADMIN_PASSWORD, protocol: str = "negotiate",
               bindings: bool = True) -> httpx.Client:
        auth = NegotiateAuth(username, password, channel_binding(self.server.tls.certificate) if bindings else None,
                             protocol)
        return httpx.Client(verify=self.tls_context, auth=auth, limits=httpx.Limits(max_connections=1),
                            event_hooks={"response": [self._keep]}, timeout=30)

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response.text)

    @contextmanager
    def site(self) -> Iterator[EmbeddedSite]:
        """The served site file, opened beside the server (as a console would change the site)."""
        site = EmbeddedSite(self.site_path)
        try:
            yield site
        finally:
            site.close()


@contextmanager
def serve_site(folder: Path, *, demo: bool = True, **options: Any) -> Iterator[Served]:
    """The server over a new demo site in ``folder``, with ``options`` for :class:`ServeConfig`."""
    site_path = folder / "site.db"
    if not site_path.exists():
        create_site(site_path, demo=demo).close()
    accounts = (Account.parse(ADMIN, ADMIN_PASSWORD), Account.parse(DENIED, DENIED_PASSWORD, admin=False))
    config = ServeConfig(site=site_path, tls_dir=folder / "tls", accounts=accounts, **options)
    with AdminServiceServer(config) as server:
        yield Served(server, site_path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve_site(tmp_path) as peer:
        yield peer
