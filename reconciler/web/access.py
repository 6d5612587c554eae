"""Who may read the web view: anyone on this machine when it listens on loopback; otherwise a token holder.

The view shows which computers get which task sequence and where the estate drifted: not for everyone on
the network. Bound to a loopback address (the default, ``127.0.0.1``), it answers this machine only, which
is also how it sits behind a reverse proxy that authenticates people (Windows authentication). Bound to any
other address it needs a token (``--web-token`` or ``RECONCILE_WEB_TOKEN``), sent as ``Authorization: Bearer
TOKEN`` or in the ``reconcile_web`` cookie, which the sign-in form sets. A token given on loopback is
required there too.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from reconciler.errors import ReconcilerError

TOKEN_ENV = "RECONCILE_WEB_TOKEN"
COOKIE = "reconcile_web"
#: A token shorter than this is refused: it could be guessed from the network.
MIN_TOKEN = 16


class WebAccessError(ReconcilerError):
    """The web view cannot be served as asked (another address without a token, a token too short)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` answers this machine only: ``127.0.0.0/8``, ``::1`` or ``localhost``."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def parse_listen(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT`` (or ``PORT``, or ``[::1]:PORT``) → (host, port); a bad value is one clear error."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise WebAccessError(f"--listen {text[:60]!r}: expected HOST:PORT with a port from 0 to 65535, such as "
                             "127.0.0.1:8080")
    return host, int(port)


@dataclass(frozen=True)
class Access:
    """The token rule of one listener. ``token`` None: open (a loopback listener without a token)."""

    token: str | None = None
    #: the listener is not on loopback and has no token: the view is off there (a controller's probes stay)
    refused: bool = False

    def allows(self, headers: Mapping[str, str]) -> bool:
        """Whether a request carries the token (bearer header or cookie); always, without a token."""
        if self.refused:
            return False
        if self.token is None:
            return True
        expected = self.token.encode("utf-8")
        auth = headers.get("Authorization") or ""
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode("utf-8"), expected):
            return True
        cookie = cookie_token(headers.get("Cookie") or "")
        return cookie is not None and hmac.compare_digest(cookie.encode("utf-8"), expected)

    def check(self, given: str) -> bool:
        """Whether a token typed into the sign-in form is the token."""
        return self.token is not None and hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))


def cookie_token(header: str) -> str | None:
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def access_for(host: str, token: str | None, *, strict: bool) -> Access:
    """The rule for a listener on ``host``: ``token`` from the option, else ``RECONCILE_WEB_TOKEN``.

    ``strict`` (``reconcile serve``, whose only job is the view): another address without a token is an error.
    Not strict (a controller's listener, which also serves probes and metrics): the view is off there.
    """
    token = token if token else os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < MIN_TOKEN:
        raise WebAccessError(f"the web view's token is {len(token)} characters; use at least {MIN_TOKEN} (for "
                             "example: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if token is None and not is_loopback(host):
        if strict:
            raise WebAccessError(f"{host} is not a loopback address: the web view there needs a token "
                                 f"(--web-token, or {TOKEN_ENV}), sent as a bearer header or cookie; or listen on "
                                 "127.0.0.1 behind a reverse proxy that authenticates")
        return Access(refused=True)
    return Access(token=token)
