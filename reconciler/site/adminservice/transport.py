"""Talking HTTPS to a ConfigMgr AdminService: TLS, Windows authentication, retries, paging, errors, counting.

Everything the site client sends goes through :class:`Transport`; it turns what the wire says into the
site's typed errors (:class:`~reconciler.site.errors.TransientSiteError` when the same call may work later,
:class:`~reconciler.site.errors.PermanentSiteError` naming the URL, the status and the site's own message
otherwise), so no httpx or pyspnego exception leaves this module.

Decisions, each with the fact behind it (CONFIGMGR.md, section AdminService):

- **TLS verification is on.** A site answers with its self-signed "SMS Issuing" chain unless a PKI
  certificate is bound: ``ca_bundle`` (or ``SSL_CERT_FILE``) names the root to trust; ``insecure`` turns
  verification off only when asked, with a warning on every run.
- **Windows authentication over HTTP** (RFC 4559): an anonymous request gets 401 with
  ``WWW-Authenticate: Negotiate``; the client answers with a SPNEGO token, the server may answer 401 with a
  challenge (NTLM's second leg), and the 200 may carry the server's last token (mutual authentication), which
  is checked. NTLM authenticates the TCP connection, so the client keeps exactly one keep-alive connection
  and holds a lock over a request and its handshake: every leg of a handshake travels on the same connection.
  The TLS channel binding (``tls-server-end-point``) is sent, as a site with Extended Protection requires.
- **Paging** is the client's: no ``@odata.nextLink`` was seen from a site, so lists are read with
  ``$top=1000&$skip=n`` until a page comes back short. ``$`` is sent literally in the query string and only
  values are percent-encoded (one source reports HTTP 400 for ``%24filter``).
- **Retries** only where they cannot duplicate a write: timeouts, resets and 429/502/503/504 are retried
  with exponential backoff and jitter, honouring ``Retry-After``; a POST (a create or a method call) is
  retried only when the site certainly did not get it (the connection was never made, or 429/503, which a
  site answers before doing the work). Otherwise the failure is transient and the applier's journal decides.
- **Bounded input**: a response larger than ``max_response_bytes`` is refused while it is read, and a body
  that is not the AdminService's JSON (an HTML page from a proxy or a host without the AdminService, cut
  short, without ``value``) is a permanent error naming the URL and the status.

Credentials (a password, a bearer token) are held by the auth object only; no message, log line or
exception made here contains one, nor any request header.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from reconciler.errors import shorten
from reconciler.site.errors import PermanentSiteError, TransientSiteError
from reconciler.site.options import SiteOptions

log = logging.getLogger(__name__)

#: The authentication methods a site connection may use (``--auth``).
AUTH_METHODS = ("negotiate", "kerberos", "ntlm", "bearer")

#: Rows a list asks for at once: the page size public clients use, and the largest a site was seen to return.
PAGE_SIZE = 1000

#: The largest response read. A task sequence's XML is at most 2 MB (4-6 MB as escaped JSON) and a list page
#: of 1,000 rows with ``$select`` is far smaller; a site's ``$metadata`` is a few MB.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024

#: Statuses a site, a load balancer or a proxy answer when the same request may work later.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})

#: Of those, the ones that say the request was not processed (so even a create may be sent again).
NOT_PROCESSED_STATUSES = frozenset({429, 503})

#: How long a ``Retry-After`` is waited for inside one call; a longer one is handed to the caller instead.
MAX_WAIT_SECONDS = 60.0

#: How much of the site's own error message an error quotes.
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Tuning:
    """How hard the transport tries: retries, waits between them, the largest answer, the page size."""

    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 20.0
    max_response_bytes: int = MAX_RESPONSE_BYTES
    page_size: int = PAGE_SIZE


class AuthenticationError(Exception):
    """Raised inside the auth flow; the transport turns it into a PermanentSiteError naming what was tried."""


# -- authentication -------------------------------------------------------------------------------


def _offered(response: httpx.Response) -> dict[str, str | None]:
    """The schemes of every ``WWW-Authenticate`` header, upper-cased, each with its token (None without one)."""
    offered: dict[str, str | None] = {}
    for value in response.headers.get_list("www-authenticate"):
        for part in value.split(","):
            words = part.strip().split(None, 1)
            if words:
                offered.setdefault(words[0].upper(), words[1].strip() if len(words) > 1 else None)
    return offered


def _channel_bindings(response: httpx.Response) -> Any:
    """RFC 5929 ``tls-server-end-point`` bindings of the connection, or None when they cannot be taken.

    A site with Extended Protection for Authentication refuses NTLM and Kerberos without them.
    """
    import spnego.channel_bindings
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    der = ssl_object.getpeercert(True) if ssl_object is not None else None
    if not der:
        return None
    try:
        algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    except Exception:  # an unusual certificate: authenticate without bindings rather than not at all
        algorithm = None
    name = algorithm.name if algorithm is not None and not isinstance(algorithm, hashes.MD5 | hashes.SHA1) \
        else "sha256"
    try:
        digest = hashlib.new(name, der).digest()
    except ValueError:
        digest = hashlib.sha256(der).digest()
    return spnego.channel_bindings.GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


class WindowsAuth(httpx.Auth):
    """HTTP Negotiate (Kerberos, NTLM inside SPNEGO), raw NTLM, or a bearer token, for one site.

    The flow answers a 401 challenge rather than authenticating every request up front: a site authenticates
    the connection, so after the first handshake the requests on it go through without another one.
    """

    requires_response_body = False  # 401 bodies are read by httpx before the next leg; the last is streamed

    def __init__(self, method: str, host: str, username: str | None = None, password: str | None = None,
                 token: str | None = None) -> None:
        if method not in AUTH_METHODS:
            raise PermanentSiteError(f"authentication {method!r} is not one of {', '.join(AUTH_METHODS)}")
        self.method = method
        self.host = host
        self._username = username
        self._password = password
        self._token = token
        #: what the last handshake tried, for a 401's message (never a credential)
        self.tried = self.describe()
        #: why the site refused the last handshake, when the handshake itself shows it (for a 401's message)
        self.refusal = ""

    def describe(self) -> str:
        who = f" as {self._username}" if self._username else ""
        if self.method == "bearer":
            return "a bearer token" + (" (none was given: set RECONCILE_SITE_TOKEN)" if not self._token else "")
        if self.method == "kerberos":
            return f"Kerberos for HTTP/{self.host}" + (who or " from the ticket cache (kinit)")
        if self.method == "ntlm":
            return f"NTLM{who}" if self._password else "NTLM, without a password (set RECONCILE_SITE_PASSWORD)"
        ntlm = f", then NTLM{who}" if self._password else ""
        return f"Negotiate: Kerberos for HTTP/{self.host}{'' if self._password else ' from the ticket cache'}{ntlm}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.method == "bearer":
            if not self._token:
                raise AuthenticationError("no bearer token was given (set RECONCILE_SITE_TOKEN)")
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request
            return
        response = yield request
        if response.status_code != 401:
            return
        offered = _offered(response)
        scheme = "NTLM" if self.method == "ntlm" and "NTLM" in offered else "Negotiate"
        if scheme.upper() not in offered:
            return  # the site asks for something else: the 401 is reported with what it offered
        self.refusal = ""
        context = self._context(response)
        try:
            token: bytes | None = context.step()
        except Exception as exc:  # pyspnego and GSSAPI raise their own types; their messages hold no secret
            problem = _kerberos_problem(exc, self.host) if self.method != "ntlm" else None
            raise AuthenticationError(f"could not start {self.tried}: {problem or _auth_detail(exc)}") from None
        legs = 0
        while token is not None:
            request.headers["Authorization"] = f"{scheme} {base64.b64encode(token).decode('ascii')}"
            response = yield request
            legs += 1
            answer = _offered(response).get(scheme.upper())
            if response.status_code != 401:
                if answer and not context.complete:
                    # The server's last token (mutual authentication): a wrong one means the answer is not
                    # from the site the ticket was made for.
                    try:
                        context.step(base64.b64decode(answer))
                    except Exception as exc:
                        raise AuthenticationError("the site's final authentication token (mutual "
                                                  f"authentication) was not valid: {_auth_detail(exc)}") from None
                return
            if not answer or context.complete:
                if legs == 1 and _protocol(context) == "ntlm":
                    # Refused at NTLM's first message, before any challenge: not the password, NTLM itself
                    # (reconcile site serve --refuse-ntlm does this; when a real 2509 site refuses is unproven).
                    self.refusal = ("the site rejects NTLM (it refused the NTLM handshake before its challenge)" + (
                                        ", and Negotiate sent NTLM because Kerberos was not possible with these "
                                        "credentials" if self.method == "negotiate" else ""))
                return  # refused: the 401 is reported by the transport
            try:
                token = context.step(base64.b64decode(answer))
            except Exception as exc:
                raise AuthenticationError(f"{self.tried} failed: {_auth_detail(exc)}") from None

    def _context(self, response: httpx.Response) -> Any:
        import spnego

        protocol = {"negotiate": "negotiate", "kerberos": "kerberos", "ntlm": "ntlm"}[self.method]
        try:
            return spnego.client(self._username, self._password, hostname=self.host, service="HTTP",
                                 channel_bindings=_channel_bindings(response), protocol=protocol)
        except ImportError:
            raise AuthenticationError(f"{self.tried} needs python-gssapi and MIT Kerberos on this machine "
                                      "(pip install 'pyspnego[kerberos]')") from None
        except Exception as exc:
            raise AuthenticationError(f"could not start {self.tried}: {_auth_detail(exc)}") from None


def _protocol(context: Any) -> str | None:
    """The protocol a pyspnego context settled on (``kerberos``, ``ntlm``), None before it knows."""
    try:
        return str(context.negotiated_protocol) if context.negotiated_protocol else None
    except Exception:
        return None


#: MIT Kerberos' minor status for KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN: the KDC has no such service principal.
_UNKNOWN_SERVICE = 2529638919


def _kerberos_problem(exc: Exception, host: str) -> str | None:
    """The usual Kerberos mistakes in words, from pyspnego's error and the GSSAPI error it wraps (negotiate
    nests them: ``BadMechanismError`` → ``NoCredentialError`` → ``GSSError``); None for anything else."""
    from importlib.util import find_spec

    from spnego.exceptions import CredentialsExpiredError, NoCredentialError

    if find_spec("gssapi") is None or find_spec("krb5") is None:
        # pyspnego then says the ticket cache "did not exist", whatever it holds.
        return ("this Python has no Kerberos support (pyspnego needs python-gssapi and krb5): pip install "
                "'configmgr-ts-reconciler[kerberos]' (they build against MIT Kerberos; Debian: libkrb5-dev)")
    seen: Any = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, NoCredentialError | CredentialsExpiredError):
            return ("the ticket cache holds no valid Kerberos ticket (none, or it expired): run kinit "
                    "<you>@<REALM> first (ConfigMgr 2509 and later refuse NTLM)")
        if getattr(seen, "min_code", None) == _UNKNOWN_SERVICE or re.search(r"Server \S+ not found in Kerberos "
                                                                            "database", str(seen)):
            return (f"the KDC knows no service principal HTTP/{host}: give the URL with the SMS Provider's host "
                    "name as the site's SPN has it (its FQDN, not an IP address), or register the SPN "
                    f"(setspn -S HTTP/{host} <the SMS Provider's computer account>)")
        seen = getattr(seen, "base_error", None)
    return None


def _auth_detail(exc: Exception) -> str:
    """What pyspnego or GSSAPI said, on one line and short (their messages name mechanisms, never secrets)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:MESSAGE_CHARS]


# -- the transport ----------------------------------------------------------------------------------


#: An object's key: a string, a number, or the named values of a composite key.
Key = str | int | Mapping[str, str | int]


@dataclass(frozen=True)
class Answer:
    """A successful response: where it came from, its status and its JSON body (None for 204)."""

    url: str
    status: int
    body: dict[str, Any] | None


def odata_key(key: str | int | Mapping[str, str | int]) -> str:
    """A key in a path: strings quoted ``('PS100012')`` with quotes doubled and percent-encoded; numbers bare; a
    composite key as ``(PackageID='PS100003',ServerNALPath='…',SiteCode='PS1')`` in the order given."""
    if isinstance(key, Mapping):
        return "(" + ",".join(f"{name}={_literal(value)}" for name, value in key.items()) + ")"
    return f"({_literal(key)})"


def _literal(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"an AdminService key is a string or an integer, not {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    return "'" + quote(value.replace("'", "''"), safe="'") + "'"


def odata_string(value: str) -> str:
    """A string literal inside ``$filter``: single-quoted, quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def query_string(options: dict[str, str]) -> str:
    """``$select=…&$filter=…``: the ``$`` literal, the values percent-encoded (commas, quotes, parentheses kept)."""
    return "&".join(f"${name}={quote(value, safe=chr(39) + ',()')}" for name, value in options.items())


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _ssl_context(options: SiteOptions) -> ssl.SSLContext:
    """Verification on by default; ``ca_bundle`` (else ``SSL_CERT_FILE``) is then the only root trusted."""
    if options.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = options.ca_bundle or (Path(os.environ["SSL_CERT_FILE"]) if os.environ.get("SSL_CERT_FILE") else None)
    if cafile is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(cafile))
    except (OSError, ssl.SSLError) as exc:
        raise PermanentSiteError(f"CA bundle {cafile} cannot be used: {exc}; give the PEM file of the site's root "
                                 "certificate (--ca-bundle)") from None


def quiet_pyspnego() -> None:
    """pyspnego logs every NTLM message at DEBUG (an NTLMv2 response can be cracked offline for the password):
    its loggers stay at WARNING whatever ``--log-level`` says."""
    logging.getLogger("spnego").setLevel(logging.WARNING)


class Transport:
    """One AdminService, over one keep-alive HTTPS connection.

    ``sleep`` and ``jitter`` are the waits between retries (tests pass their own to see the waits asked for).
    ``counts`` holds the requests made, by method and kind (``list``, ``get``, ``write``, ``method``,
    ``metadata``), one per call whatever its pages' retries or handshake legs; ``attempts`` counts every
    request sent, handshake legs excepted.
    """

    def __init__(self, options: SiteOptions, tuning: Tuning | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, jitter: Callable[[], float] = random.random) -> None:
        url = (options.url or "").rstrip("/")
        parts = urlsplit(url)
        if parts.scheme.lower() != "https":
            raise PermanentSiteError(f"site {shorten(url)}: the AdminService is served over HTTPS only; give an "
                                     "https:// URL")
        if not parts.hostname:
            raise PermanentSiteError(f"site {shorten(url)} names no host")
        if options.insecure:
            log.warning("site %s: TLS certificate verification is OFF (--insecure): anyone on the network path "
                        "can read and change what is sent, including credentials; give --ca-bundle instead", url)
        quiet_pyspnego()
        self.options = options
        self.tuning = tuning or Tuning()
        self.base = url
        self.host = parts.hostname
        credentials = options.credentials
        self.auth = WindowsAuth(str(options.auth.value), parts.hostname, credentials.username, credentials.password,
                                credentials.token)
        self.auth.tried = options.describe_auth()
        self._sleep = sleep
        self._jitter = jitter
        self._lock = threading.RLock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.attempts = 0
        self._client = httpx.Client(
            verify=_ssl_context(options), timeout=httpx.Timeout(options.timeout), follow_redirects=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            trust_env=False,  # no proxy from the environment: the AdminService is reached directly
            headers={"Accept": "application/json", "User-Agent": "reconcile (configmgr-ts-reconciler)"})

    def close(self) -> None:
        self._client.close()

    def url(self, path: str, query: dict[str, str] | None = None) -> str:
        return f"{self.base}/{path}" + (f"?{query_string(query)}" if query else "")

    # -- calls ------------------------------------------------------------------------------------

    def list(self, cls: str, select: tuple[str, ...] = (), where: str | None = None) -> list[dict[str, Any]]:
        """Every row of a class (or those ``where`` keeps), page by page until a short page."""
        return list(self.iter_rows(cls, select, where))

    def iter_rows(self, cls: str, select: tuple[str, ...] = (), where: str | None = None
                  ) -> Iterator[dict[str, Any]]:
        size = self.tuning.page_size
        skip = 0
        while True:
            query: dict[str, str] = {}
            if select:
                query["select"] = ",".join(select)
            if where:
                query["filter"] = where
            query["top"], query["skip"] = str(size), str(skip)
            rows = self._rows(self.request("GET", f"wmi/{cls}", kind="list", query=query))
            yield from rows
            if len(rows) < size:
                return
            skip += size

    def get(self, cls: str, key: Key, select: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The object with this key (with its lazy properties), or None when the site has none."""
        query = {"select": ",".join(select)} if select else None
        answer = self.request("GET", f"wmi/{cls}{odata_key(key)}", kind="get", query=query, missing_ok=True)
        if answer is None:
            return None
        rows = self._rows(answer)
        return rows[0] if rows else None

    def create(self, cls: str, row: dict[str, Any]) -> dict[str, Any]:
        answer = self.request("POST", f"wmi/{cls}", kind="write", body=row)
        return self._entity(answer)

    def update(self, cls: str, key: Key, row: dict[str, Any]) -> dict[str, Any] | None:
        answer = self.request("PUT", f"wmi/{cls}{odata_key(key)}", kind="write", body=row)
        if answer is None or answer.body is None:
            return None
        return self._entity(answer)

    def delete(self, cls: str, key: Key) -> bool:
        """Delete it; False when it was not there (a delete that already happened is done)."""
        return self.request("DELETE", f"wmi/{cls}{odata_key(key)}", kind="write", missing_ok=True) is not None

    def call(self, cls: str, method: str, parameters: dict[str, Any], key: Key | None = None
             ) -> dict[str, Any]:
        """A static method (``wmi/Class.Method``) or, with ``key``, an instance method
        (``wmi/Class('key')/AdminService.Method``); the out-parameters (``ReturnValue``, …)."""
        path = f"wmi/{cls}.{method}" if key is None else f"wmi/{cls}{odata_key(key)}/AdminService.{method}"
        answer = self.request("POST", path, kind="method", body=parameters)
        out = (answer.body if answer is not None else None) or {}
        code = out.get("ReturnValue", 0)
        if isinstance(code, int) and code != 0:
            raise PermanentSiteError(f"{self.url(path)}: {cls}.{method} returned {code} (ReturnValue)")
        return out

    def metadata(self) -> bytes:
        """``wmi/$metadata``: the CSDL document of the classes and methods this site offers."""
        with self._lock:
            return self._send("GET", "wmi/$metadata", kind="metadata", query=None, body=None, raw=True)

    def request(self, method: str, path: str, *, kind: str, query: dict[str, str] | None = None,
                body: dict[str, Any] | None = None, missing_ok: bool = False) -> Answer | None:
        """One call, retried where that is safe; None for a 404 that means "no such object" when ``missing_ok``."""
        with self._lock:
            result = self._send(method, path, kind=kind, query=query, body=body, missing_ok=missing_ok)
        assert result is None or isinstance(result, Answer)
        return result

    # -- the machinery ----------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, kind: str, query: dict[str, str] | None,
              body: dict[str, Any] | None, missing_ok: bool = False, raw: bool = False) -> Any:
        url = self.url(path, query)
        content = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else {}
        self.counts[(method, kind)] += 1
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            started = time.monotonic()
            wait: float | None = None
            try:
                with self._client.stream(method, url, content=content, headers=headers, auth=self.auth) as response:
                    status = response.status_code
                    log.debug("%s %s -> %s (%.0f ms)", method, url, status, (time.monotonic() - started) * 1000)
                    if status in TRANSIENT_STATUSES:
                        wait = _retry_after(response)
                        retry = method != "POST" or status in NOT_PROCESSED_STATUSES
                        reason = f"HTTP {status}"
                    else:
                        data = self._read(response, url)
                        return self._answer(method, url, status, data, response, missing_ok, raw)
            except AuthenticationError as exc:
                raise PermanentSiteError(f"{method} {url}: authentication failed: {exc}") from None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if isinstance(exc, httpx.ConnectError) and _certificate_problem(exc):
                    raise PermanentSiteError(self._tls_message(url, exc)) from None
                retry, reason = True, _network_reason(exc)  # never reached the site: safe to send again
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                retry, reason = method != "POST", _network_reason(exc)
            if not retry:
                raise TransientSiteError(f"{method} {url}: {reason}; the site may or may not have done it, so it "
                                         "was not sent again: the next run checks and finishes it",
                                         retry_after=wait)
            if wait is not None and wait > MAX_WAIT_SECONDS:
                raise TransientSiteError(f"{method} {url}: {reason}; the site asked to wait {wait:.0f} s",
                                         retry_after=wait)
            if attempt > self.tuning.retries:
                raise TransientSiteError(f"{method} {url}: {reason} ({attempt} attempts); try again later",
                                         retry_after=wait)
            backoff = min(self.tuning.max_backoff, self.tuning.backoff * 2 ** (attempt - 1))
            delay = max(wait or 0.0, backoff * (0.5 + self._jitter() / 2))
            log.info("%s %s: %s; trying again in %.1f s (attempt %d of %d)", method, url, reason, delay,
                     attempt + 1, self.tuning.retries + 1)
            self._sleep(delay)

    def _read(self, response: httpx.Response, url: str) -> bytes:
        """The body, refused past the size limit while it is read; a cut-short body is a permanent error."""
        limit = self.tuning.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PermanentSiteError(f"{url} answered HTTP {response.status_code} with {int(declared):,} bytes, more "
                                     f"than the {limit:,} bytes this tool reads from a site")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise PermanentSiteError(f"{url} answered HTTP {response.status_code} with more than the "
                                             f"{limit:,} bytes this tool reads from a site")
                chunks.append(chunk)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.DecodingError) as exc:
            raise PermanentSiteError(f"{url} answered HTTP {response.status_code} with a body cut short after "
                                     f"{size:,} bytes ({_network_reason(exc)})") from None
        except httpx.ReadTimeout:
            raise TransientSiteError(f"{url} answered HTTP {response.status_code} and then stopped sending its body "
                                     f"(timed out after {size:,} bytes)") from None
        return b"".join(chunks)

    def _answer(self, method: str, url: str, status: int, data: bytes, response: httpx.Response,
                missing_ok: bool, raw: bool) -> Any:
        if 200 <= status < 300:
            if raw:
                return data
            if status == 204 or not data.strip():
                return Answer(url, status, None)
            return Answer(url, status, self._json(url, status, data, response))
        message = _site_message(data, response)
        if status == 404 and "access denied" in message.casefold():
            # An authenticated user who is no ConfigMgr administrator is answered 404, not 403.
            who = self.options.credentials.username or "(from the Kerberos ticket cache)"
            raise PermanentSiteError(f"{method} {url}: HTTP 404 {message}: the account {who} may not be a ConfigMgr "
                                     "administrative user, or its role or security scopes do not cover this object")
        if status == 404 and missing_ok and not _html(data, response):
            return None
        if status == 401 and self.auth.refusal:
            raise PermanentSiteError(f"{method} {url}: HTTP 401: {self.auth.refusal}; tried {self.auth.tried}; "
                                     "ConfigMgr 2509 and later refuse NTLM: use Kerberos (kinit): a ticket from "
                                     "kinit <you>@<REALM> with RECONCILE_SITE_PASSWORD unset, or "
                                     "RECONCILE_SITE_USERNAME given as <you>@<REALM> (DOMAIN\\name means NTLM)")
        if status == 401:
            offered = ", ".join(response.headers.get_list("www-authenticate")) or "nothing"
            offered = ", ".join(s.split()[0] for s in offered.split(",") if s.strip())
            raise PermanentSiteError(f"{method} {url}: HTTP 401: the site refused the credentials; tried "
                                     f"{self.auth.tried}; the site offers {offered}" +
                                     ("; ConfigMgr 2509 and later refuse NTLM: use Kerberos (kinit)"
                                      if self.auth.method == "ntlm" else ""))
        if status == 403:
            raise PermanentSiteError(f"{method} {url}: HTTP 403: the account is not permitted to do this: {message}")
        if 300 <= status < 400:
            where = shorten(response.headers.get("location", ""), 120)
            raise PermanentSiteError(f"{method} {url}: HTTP {status}: the site redirects to {where}; give the "
                                     "AdminService URL itself (https://<SMS Provider>/AdminService)")
        raise PermanentSiteError(f"{method} {url}: HTTP {status}: {message}")

    def _json(self, url: str, status: int, data: bytes, response: httpx.Response) -> dict[str, Any]:
        if _html(data, response):
            raise PermanentSiteError(f"{url} answered HTTP {status} with an HTML page, not the AdminService's JSON: "
                                     "a proxy, or a host without the AdminService; check the URL "
                                     "(https://<SMS Provider>/AdminService)")
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise PermanentSiteError(f"{url} answered HTTP {status} with a body that is not valid JSON "
                                     f"({shorten(str(exc), 80)}; {len(data):,} bytes, starting "
                                     f"{shorten(data[:40].decode('utf-8', 'replace'), 40)})") from None
        if not isinstance(parsed, dict):
            raise PermanentSiteError(f"{url} answered HTTP {status} with JSON that is not an object "
                                     f"({type(parsed).__name__})")
        return parsed

    def _rows(self, answer: Answer | None) -> list[dict[str, Any]]:
        body = answer.body if answer is not None else None
        rows = body.get("value") if isinstance(body, dict) else None
        if answer is None or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            where = f"{answer.url} answered HTTP {answer.status}" if answer is not None else "the site answered"
            raise PermanentSiteError(f"{where} without a 'value' list of objects, as the AdminService always sends")
        return rows

    def _entity(self, answer: Answer | None) -> dict[str, Any]:
        """A create's or update's answer: the object itself, or wrapped in ``value`` as a get answers."""
        body = answer.body if answer is not None else None
        if answer is None or not isinstance(body, dict):
            where = f"{answer.url} answered HTTP {answer.status}" if answer is not None else "the site answered"
            raise PermanentSiteError(f"{where} without the object written")
        value = body.get("value")
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return value[0]
        return body

    def _tls_message(self, url: str, exc: Exception) -> str:
        where = self.options.ca_bundle or os.environ.get("SSL_CERT_FILE")
        trust = f"the CA bundle {where}" if where else "this machine's trusted roots"
        return (f"{url}: the site's TLS certificate is not trusted by {trust} ({_auth_detail(exc)}); export the "
                "site's root certificate (the SMS Issuing root, or your PKI root) and give it with --ca-bundle")


def _certificate_problem(exc: Exception) -> bool:
    text = str(exc).lower()
    return "certificate_verify_failed" in text or "certificate verify failed" in text or \
        ("hostname" in text and "match" in text)


def _network_reason(exc: Exception) -> str:
    kind = {httpx.ConnectTimeout: "connecting timed out", httpx.ReadTimeout: "no answer in time",
            httpx.WriteTimeout: "sending timed out", httpx.PoolTimeout: "no free connection in time",
            httpx.ConnectError: "could not connect", httpx.ReadError: "the connection broke while reading",
            httpx.WriteError: "the connection broke while sending",
            httpx.RemoteProtocolError: "the site closed the connection"}.get(type(exc), type(exc).__name__)
    detail = _auth_detail(exc)
    return f"{kind} ({detail})" if detail and detail != type(exc).__name__ else kind


def _html(data: bytes, response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "").lower() or data.lstrip()[:1] == b"<"


def _site_message(data: bytes, response: httpx.Response) -> str:
    """The site's own words for an error: the OData ``error.message``, or what kind of body it was."""
    if not data.strip():
        return "(no body)"
    if _html(data, response):
        return "an HTML page, not the AdminService's JSON: a proxy, or a host without the AdminService"
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return f"a body that is not JSON ({len(data):,} bytes)"
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, dict):  # OData v3 wraps it: {"message": {"lang": …, "value": …}}
        message = message.get("value")
    if not isinstance(message, str) or not message.strip():
        return f"an error without a message ({len(data):,} bytes)"
    text = " ".join(message.split())
    return text if len(text) <= MESSAGE_CHARS else f"{text[:MESSAGE_CHARS]}… ({len(text):,} characters)"
