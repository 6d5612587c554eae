"""``reconcile site serve``: an AdminService-compatible HTTPS server over an embedded site, for tests and demos.

It serves ``https://<host>:<port>/AdminService/`` with the wire shapes, authentication and errors of a real
site (see :mod:`~reconciler.site.serve.handler`, :mod:`~reconciler.site.serve.auth`,
:mod:`~reconciler.site.serve.odata`, :mod:`~reconciler.site.serve.writes`), so the site client is tested against
what a site sends. Use it in-process::

    admin = Account.parse("CORP\\\\svc", password)
    with AdminServiceServer(ServeConfig(site=path, tls_dir=tls, accounts=(admin,))) as server:
        server.url            # https://127.0.0.1:<port>/AdminService/
        server.tls.ca         # the CA to trust (--ca-bundle)
        server.request_log    # what was asked, for counting

It binds to 127.0.0.1 unless told otherwise; :attr:`AdminServiceServer.loopback` says whether it does.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.site.serve.auth import Account, Authenticator
from reconciler.site.serve.backend import BackendOptions, SiteBackend
from reconciler.site.serve.handler import IDLE_TIMEOUT, AdminServiceHandler
from reconciler.site.serve.metadata import metadata_document
from reconciler.site.serve.requestlog import RequestLog
from reconciler.site.serve.tls import endpoint_binding, ensure_certificates, server_context


class ServeError(ReconcilerError):
    """The server cannot start as configured (address in use, no accounts, …)."""


@dataclass(frozen=True)
class ServeConfig:
    site: Path
    tls_dir: Path
    accounts: tuple[Account, ...]
    host: str = "127.0.0.1"
    port: int = 0
    #: the host name clients use (the SPN is HTTP/<hostname>; the certificate covers it)
    hostname: str = "localhost"
    hide_methods: frozenset[str] = frozenset()
    refuse_ntlm: bool = False
    keytab: Path | None = None
    channel_binding: bool = True
    refuse_schedule_writes: bool = False
    request_log: Path | None = None
    site_name: str = "Reconcile test site"


class _HTTPSServer(ThreadingHTTPServer):
    """One thread per connection; TLS is negotiated in that thread, not in the accepting one."""

    daemon_threads = True
    app: AdminServiceServer
    context: ssl.SSLContext

    def __init__(self, address: tuple[str, int], family: int) -> None:
        self.address_family = family
        super().__init__(address, AdminServiceHandler)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(IDLE_TIMEOUT)
        with contextlib.suppress(OSError):  # answers go out at once, not after the client's delayed ACK
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # not TLS, or a client that gave up: nothing to answer
        with self._lock:
            self._open.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass  # the client went away mid-request
        finally:
            with self._lock:
                self._open.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def close_connections(self) -> None:
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class AdminServiceServer:
    """The server, started by ``start()`` (or ``with``) in a background thread and stopped by ``stop()``."""

    def __init__(self, config: ServeConfig) -> None:
        if not any(a.admin for a in config.accounts):
            raise ServeError("site serve needs at least one administrator account (--user)")
        self.config = config
        self.host = config.host
        self.server_name = config.hostname
        self.hide = frozenset(config.hide_methods)
        self.metadata = metadata_document(self.hide)
        self.backend = SiteBackend(config.site, BackendOptions(  # first: a missing site leaves nothing behind
            server_name=config.hostname, site_name=config.site_name,
            admins=tuple(a.logon_name for a in config.accounts if a.admin), hide=self.hide,
            refuse_schedule_writes=config.refuse_schedule_writes))
        self.request_log = RequestLog(config.request_log)
        try:
            self.tls = ensure_certificates(config.tls_dir, (config.hostname, config.host))
            self.authenticator = Authenticator(
                config.accounts, hostname=config.hostname, refuse_ntlm=config.refuse_ntlm, keytab=config.keytab,
                channel_binding=endpoint_binding(self.tls) if config.channel_binding else None)
            try:
                family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
                self._httpd = _HTTPSServer((config.host, config.port), family)
            except OSError as exc:
                self.authenticator.close()
                raise ServeError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        except BaseException:
            self.backend.close()
            self.request_log.close()
            raise
        self._httpd.app = self
        self._httpd.context = server_context(self.tls)
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/AdminService/"

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def start(self) -> AdminServiceServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="site-serve-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` is called from another (or KeyboardInterrupt)."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.close_connections()
        self._httpd.server_close()
        self.authenticator.close()
        self.backend.close()
        self.request_log.close()

    def __enter__(self) -> AdminServiceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:8443``, ``[::1]:8443`` or ``:8443`` (loopback) as (host, port); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ServeError(f"--listen {text[:60]!r}: write HOST:PORT, such as 127.0.0.1:8443")
    return host, int(port)


def read_method_names(path: Path) -> list[str]:
    """Method names to hide, one per line (``SetSequence`` or ``SMS_TaskSequencePackage.SetSequence``); ``#``
    starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ServeError(f"--hide-methods-file {path}: cannot be read ({exc})") from None
    names = []
    for number, line in enumerate(lines, 1):
        name = line.split("#", 1)[0].strip()
        if name and not all(part.isidentifier() for part in name.split(".")):
            raise ServeError(f"{path}, line {number}: {name[:60]!r} is not a method name (Method or Class.Method)")
        if name:
            names.append(name)
    return names


def run(config: ServeConfig, announce: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """``reconcile site serve``: serve until SIGINT or SIGTERM, then stop cleanly (the NTLM account file removed)."""
    stop = threading.Event()
    server = AdminServiceServer(config)
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.start()
        if not server.loopback:
            warn(f"warning: this is a test and demo server, listening on {server.host}, which other machines may "
                 "reach; it serves an embedded site with test accounts")
        announce(f"serving site {server.backend.site_code} from {config.site} at {server.url}")
        announce(f"clients trust {server.tls.ca} (--ca-bundle); accounts: "
                 + ", ".join(a.logon_name + ("" if a.admin else " (no ConfigMgr role)") for a in config.accounts))
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
