"""Windows authentication for ``reconcile site serve``: Negotiate (RFC 4559) with a real handshake.

What a client meets, as on a site:

- A request without credentials gets **401 with an empty body** and ``WWW-Authenticate: Negotiate``.
- ``Authorization: Negotiate <token>`` is answered by pyspnego's acceptor: NTLM (raw or wrapped in SPNEGO)
  against the configured accounts, and Kerberos for ``HTTP/<host>`` when a keytab is given and python-gssapi
  is installed. NTLM's second leg is a 401 carrying the challenge; the handshake is tied to the TCP
  connection (one acceptor per connection), so a client must keep the connection alive between the legs.
  Once a connection has authenticated, later requests on it are served as the same user without a new
  handshake, as IIS does by default (``authPersistNonNTLM``; NTLM is always connection-bound); a new
  ``Authorization`` header starts a new handshake.
- ``refuse_ntlm`` answers an NTLM attempt with 401, as ConfigMgr 2509 and later do (their log says
  "Rejecting NTLM authentication."; the request log here records that reason).
- Channel binding (Extended Protection): when the server knows its ``tls-server-end-point`` binding, a client
  must send the same one in its NTLM or Kerberos token.

NTLM credentials: pyspnego's acceptor reads accounts from the file named by ``NTLM_USER_FILE``. The file is
written here, in a private temporary folder (0700, file 0600) holding each account's LM/NT hashes (pyspnego's
six-field line format, so a password may hold any character and is never on disk in clear), shared by every
server of this process (the variable is process-wide) and removed when the last server stops or the process
exits. Nothing here logs a password, a hash or a token.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import spnego
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import NegotiateOptions, SpnegoError

from reconciler.errors import ReconcilerError

#: What a site's AdminService log says when it refuses NTLM (ConfigMgr 2509 and later).
REJECTING_NTLM = "Rejecting NTLM authentication."


class AuthSetupError(ReconcilerError):
    """The server's accounts or Kerberos settings cannot be used as given."""


@dataclass(frozen=True)
class Account:
    """A Windows account the server knows: ``DOMAIN\\name``; an administrator, or a user without a ConfigMgr
    role (authenticated, then refused as a site refuses a non-administrator)."""

    domain: str
    name: str
    password: str = field(repr=False)
    admin: bool = True

    @classmethod
    def parse(cls, logon: str, password: str, admin: bool = True) -> Account:
        domain, sep, name = logon.partition("\\")
        if not sep or not domain or not name or any(c in logon for c in ":\r\n") or "\\" in name:
            raise AuthSetupError(f"user {logon[:40]!r} (length {len(logon)}): write it as DOMAIN\\name "
                                 "(no ':' and no line breaks)")
        if not password:
            raise AuthSetupError(f"user {logon}: the password is empty")
        return cls(domain, name, password, admin)

    @property
    def logon_name(self) -> str:
        return f"{self.domain}\\{self.name}"

    def matches(self, principal: str) -> bool:
        """``CORP\\svc`` (NTLM) or ``svc@CORP.CONTOSO.COM`` (Kerberos: the realm's first label is the domain)."""
        if "@" in principal:
            name, _, realm = principal.partition("@")
            domain = realm.split(".", 1)[0]
        else:
            domain, _, name = principal.rpartition("\\")
        return name.casefold() == self.name.casefold() and domain.casefold() == self.domain.casefold()


class _NtlmUserFile:
    """The one NTLM_USER_FILE of this process: the accounts of every running server, hashed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[int, tuple[Account, ...]] = {}
        self._folder: Path | None = None
        self._previous: str | None = None
        self._next = 0
        atexit.register(self._remove)

    def register(self, accounts: tuple[Account, ...]) -> int:
        with self._lock:
            known = {(a.domain.casefold(), a.name.casefold()): a for owned in self._owners.values() for a in owned}
            for account in accounts:
                other = known.get((account.domain.casefold(), account.name.casefold()))
                if other is not None and other.password != account.password:
                    raise AuthSetupError(f"user {account.logon_name} is already served by another server of this "
                                         "process with another password")
            self._next += 1
            self._owners[self._next] = accounts
            self._write()
            return self._next

    def unregister(self, token: int) -> None:
        with self._lock:
            self._owners.pop(token, None)
            if self._owners:
                self._write()
            else:
                self._remove()

    def _write(self) -> None:
        from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1

        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="reconcile-serve-"))  # 0700
            self._previous = os.environ.get("NTLM_USER_FILE")
        lines = []
        seen = set()
        for owned in self._owners.values():
            for a in owned:
                if (key := (a.domain.casefold(), a.name.casefold())) not in seen:
                    seen.add(key)
                    # smbpasswd format: USER:UID:LM:NT:FLAGS:LCT (six fields)
                    hashes = f"{lmowfv1(a.password).hex()}:{ntowfv1(a.password).hex()}"
                    lines.append(f"{a.domain}\\{a.name}:0:{hashes}:[U]:LCT-0")
        path = self._folder / "ntlm-users"
        staging = self._folder / "ntlm-users.new"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(staging, path)
        os.environ["NTLM_USER_FILE"] = str(path)

    def _remove(self) -> None:
        if self._folder is None:
            return
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder = None
        if self._previous is None:
            os.environ.pop("NTLM_USER_FILE", None)
        else:
            os.environ["NTLM_USER_FILE"] = self._previous


NTLM_USERS = _NtlmUserFile()


def kerberos_available() -> bool:
    """Whether pyspnego can accept Kerberos here: its GSSAPI provider needs python-gssapi *and* krb5 (the
    ``pyspnego[kerberos]`` extra); with gssapi alone it silently offers NTLM only."""
    return find_spec("gssapi") is not None and find_spec("krb5") is not None


@dataclass(frozen=True)
class Outcome:
    """What one request's credentials came to: the user (``account`` None for an authenticated principal that is
    no configured account), or a 401 with the token to send back and the reason for the request log."""

    principal: str | None = None
    account: Account | None = None
    token: bytes | None = None
    reason: str = ""


class Authenticator:
    """The server's side of Negotiate: one :class:`ConnectionAuth` per TCP connection."""

    def __init__(self, accounts: tuple[Account, ...], *, hostname: str = "localhost", refuse_ntlm: bool = False,
                 keytab: Path | None = None, channel_binding: bytes | None = None) -> None:
        if keytab is not None:
            if not kerberos_available():
                raise AuthSetupError("--keytab needs Kerberos support: install python-gssapi and krb5 (pip install "
                                     "'pyspnego[kerberos]', with the MIT Kerberos development files)")
            if not keytab.is_file():
                raise AuthSetupError(f"keytab {keytab} does not exist")
            # MIT Kerberos acceptors read their keys from KRB5_KTNAME (process-wide).
            os.environ["KRB5_KTNAME"] = f"FILE:{keytab.resolve()}"
        self.accounts = accounts
        self.hostname = hostname
        self.refuse_ntlm = refuse_ntlm
        self.kerberos = keytab is not None
        self._bindings = GssChannelBindings(application_data=channel_binding) if channel_binding else None
        self._token = NTLM_USERS.register(accounts)

    def close(self) -> None:
        NTLM_USERS.unregister(self._token)

    def account_for(self, principal: str) -> Account | None:
        return next((a for a in self.accounts if a.matches(principal)), None)

    def new_context(self) -> spnego.ContextProxy:
        return spnego.server(hostname=self.hostname, service="HTTP", protocol="negotiate",
                             channel_bindings=self._bindings, options=NegotiateOptions.use_negotiate)


class ConnectionAuth:
    """The authentication state of one TCP connection (NTLM's legs must share it)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator
        self._context: spnego.ContextProxy | None = None
        self._principal: str | None = None

    def process(self, header: str | None) -> Outcome:
        """The outcome of a request's ``Authorization`` header (None: none sent)."""
        if header is None:
            if self._principal is not None:
                return self._done(None)
            return Outcome(reason="no credentials")
        scheme, _, data = header.strip().partition(" ")
        if scheme.casefold() != "negotiate" or not data.strip():
            return Outcome(reason=f"authentication scheme {scheme[:20]!r} is not offered; Negotiate is")
        try:
            token = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            return self._fail("the Negotiate token is not base64")
        if self._context is None or self._context.complete:
            self._context = self._auth.new_context()
            self._principal = None
        try:
            out = self._context.step(token)
        except SpnegoError as exc:
            return self._fail(f"authentication failed ({type(exc).__name__})")
        except Exception as exc:  # a malformed token can trip pyspnego's parsers
            return self._fail(f"authentication failed: unreadable token ({type(exc).__name__})")
        if self._auth.refuse_ntlm and self._protocol() == "ntlm":
            return self._fail(REJECTING_NTLM)
        if not self._context.complete:
            return Outcome(token=out, reason="negotiating")
        self._principal = self._context.client_principal or ""
        return self._done(out)

    def _protocol(self) -> str | None:
        try:
            return self._context.negotiated_protocol if self._context is not None else None
        except Exception:  # pyspnego answers only once it has seen a token of the protocol
            return None

    def _done(self, token: bytes | None) -> Outcome:
        principal = self._principal or ""
        return Outcome(principal=principal, account=self._auth.account_for(principal), token=token)

    def _fail(self, reason: str) -> Outcome:
        self._context = None
        self._principal = None
        return Outcome(reason=reason)
