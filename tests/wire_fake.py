"""A scriptable HTTPS server on 127.0.0.1 for the transport's own tests: what a site, a proxy or a broken
network may answer (retries, Retry-After, malformed bodies, resets), with a real NTLM handshake.

It is no AdminService (``reconcile site serve`` is, and the conformance suite talks to it); it answers what
each test scripts, so the transport's handling of every kind of answer is seen against a real socket, TLS
and pyspnego's own NTLM acceptor.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_ca(folder: Path, name: str = "Test SMS Issuing") -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class Seen:
    """One request as the server got it."""

    method: str
    path: str
    connection: int
    authorization: str | None
    body: bytes
    user: str | None


#: What a route answers: (status, headers, body); body may be bytes, a JSON-able object, or a Special.
Reply = tuple[int, dict[str, str], Any]


@dataclass(frozen=True)
class Special:
    """An answer no well-behaved server gives: ``reset`` (RST, no answer), ``truncate`` (a body cut short),
    ``hang`` (never answer)."""

    what: str
    body: bytes = b""


@dataclass
class FakeSite:
    """The server's script and what it saw. ``route`` answers each authenticated request."""

    route: Callable[[str, str, bytes], Reply] = lambda method, path, body: (200, {}, {"value": []})
    users: dict[str, str] | None = None  # None: no authentication asked
    bearer: str | None = None
    #: a bogus final token on the authenticated 200 (a server that is not who it claims)
    forge_final_token: bool = False
    seen: list[Seen] = field(default_factory=list)
    handshakes: int = 0
    port: int = 0
    stop_hanging: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/AdminService"

    def requests(self, method: str | None = None) -> list[Seen]:
        """The requests that reached the route (authentication legs left out)."""
        return [s for s in self.seen if s.user is not None and (method is None or s.method == method)]


def _handler(site: FakeSite) -> type[BaseHTTPRequestHandler]:
    counter = iter(range(1, 1_000_000))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection

        def setup(self) -> None:
            super().setup()
            self.connection_id = next(counter)
            self.context: Any = None
            self.user: str | None = None

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authenticate(self) -> dict[str, str] | None:
            """Headers for the answer once authenticated; None when a 401 was sent instead."""
            header = self.headers.get("Authorization")
            if site.bearer is not None:
                if header == f"Bearer {site.bearer}":
                    self.user = "bearer"
                    return {}
                self._reply(401, {"WWW-Authenticate": "Bearer"}, b"")
                return None
            if site.users is None or (self.user is not None and header is None):
                return {}
            import spnego

            if not header or not header.startswith(("Negotiate ", "NTLM ")):
                self._reply(401, {"WWW-Authenticate": "Negotiate"}, b"")
                return None
            scheme, token = header.split(" ", 1)
            if self.context is None or self.user is not None:
                self.context, self.user = spnego.server(protocol="negotiate"), None
            try:
                out = self.context.step(base64.b64decode(token))
            except Exception:
                self.context = None
                self._reply(401, {"WWW-Authenticate": "Negotiate"}, b"")
                return None
            if not self.context.complete:
                self._reply(401, {"WWW-Authenticate": f"{scheme} {base64.b64encode(out or b'').decode()}"}, b"")
                return None
            site.handshakes += 1
            self.user = self.context.client_principal
            if site.forge_final_token and out:
                out = out[:-8] + bytes(4) + out[-4:]  # the final SPNEGO token with a wrong mechListMIC checksum
            return {"WWW-Authenticate": f"{scheme} {base64.b64encode(out).decode()}"} if out else {}

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, self.connection_id, self.headers.get("Authorization"), body, None)
            site.seen.append(seen)
            extra = self._authenticate()
            if extra is None:
                return
            seen.user = self.user or "anonymous"
            status, headers, payload = site.route(self.command, self.path, body)
            if isinstance(payload, Special):
                self._special(status, headers, payload)
                return
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            if isinstance(payload, dict | list) and "Content-Type" not in headers:
                headers = {**headers, "Content-Type": "application/json; odata.metadata=minimal"}
            self._reply(status, {**headers, **extra}, data)

        def _special(self, status: int, headers: dict[str, str], payload: Special) -> None:
            if payload.what == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
            elif payload.what == "truncate":
                self._reply(status, {**headers, "Content-Length": str(len(payload.body) * 4)}, payload.body)
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif payload.what == "hang":
                site.stop_hanging.wait(30)
                self.close_connection = True
            elif payload.what == "stream":  # chunked, endless (until the client stops reading)
                self.send_response(status)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                chunk = b"[" + b"0," * 32768
                try:
                    for _ in range(100_000):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    pass
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler


class FakeServer:
    """The server running in a thread, on a free port of 127.0.0.1."""

    def __init__(self, site: FakeSite, cert: Path, key: Path) -> None:
        self.site = site
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        site.port = self.httpd.server_address[1]
        # shutdown() waits for serve_forever's next poll: at the default 0.5 s that was half a second per test
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.site.stop_hanging.set()
        self.httpd.shutdown()
        self.httpd.server_close()
