"""How to reach a site: :class:`SiteOptions`, resolved from the command line, the environment and ``reconcile.yaml``.

One object carries everything :func:`reconciler.site.open_site` needs beyond the target: the AdminService URL,
TLS trust, the authentication and the credentials, read-only, and the WinRM host for what REST cannot do.

Where each setting comes from (the first that says something wins):

- the command line (``--site``, ``--ca-bundle``, ``--insecure``, ``--auth``, ``--read-only``);
- the environment: ``RECONCILE_SITE_USERNAME`` / ``RECONCILE_SITE_PASSWORD`` (NTLM, or Kerberos without a
  ticket cache), ``RECONCILE_SITE_TOKEN`` (bearer), ``RECONCILE_WINRM_USERNAME`` / ``RECONCILE_WINRM_PASSWORD``;
- ``reconcile.yaml``'s ``site:`` section (credentials there only as ``{valueFrom: …}``, read with the secrets
  policy of the manifests, so the same folder and allow-list rules hold);
- for the CA bundle last, ``SSL_CERT_FILE`` (a machine-wide setting: the site's own one is more specific);
- Kerberos takes its ticket from the ticket cache (``kinit``; ``KRB5CCNAME``) when no password is given.

Credentials never come from the command line (they would sit in ``ps`` and shell history) nor from a URL.
``--insecure`` exists only on the command line, so it is chosen on each run, and every run says so on stderr.
Nothing here sends a request: a bad setting is refused before the first one, naming where it was written.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from reconciler.config import ConfigError
from reconciler.errors import shorten
from reconciler.site.errors import PermanentSiteError

if TYPE_CHECKING:
    from reconciler.config import SecretsPolicy, SiteSettings
    from reconciler.models.base import SecretRef

ENV_USERNAME = "RECONCILE_SITE_USERNAME"
ENV_PASSWORD = "RECONCILE_SITE_PASSWORD"
ENV_TOKEN = "RECONCILE_SITE_TOKEN"
ENV_WINRM_USERNAME = "RECONCILE_WINRM_USERNAME"
ENV_WINRM_PASSWORD = "RECONCILE_WINRM_PASSWORD"
ENV_CA_FILE = "SSL_CERT_FILE"

#: Where state stores (and caches) of remote sites live: a remote site has no file to sit beside.
STATE_FOLDER = Path(".reconcile")

#: The last path segment of an AdminService URL: on the SMS Provider, behind a CMG, or the token endpoint.
_ADMINSERVICE_SEGMENTS = ("adminservice", "adminservice_tokenauth")
_MAX_URL = 2048


class SiteOptionsError(ConfigError):
    """A site setting cannot be used; the message names where it was given (option, variable or file:line)."""


class SiteIsReadOnly(PermanentSiteError):
    """A write was asked of a site opened read-only (``--read-only``, ``site.readOnly``); nothing was sent."""


class Auth(StrEnum):
    """How the AdminService client authenticates."""

    NEGOTIATE = "negotiate"  # SPNEGO: Kerberos first, NTLM when Kerberos is not possible
    KERBEROS = "kerberos"
    NTLM = "ntlm"  # refused by ConfigMgr 2509 and later
    BEARER = "bearer"  # an Entra ID (Azure AD) token, through a cloud management gateway


class WinRMAuth(StrEnum):
    """How pypsrp authenticates to the WinRM host."""

    NEGOTIATE = "negotiate"
    KERBEROS = "kerberos"
    NTLM = "ntlm"
    CREDSSP = "credssp"  # delegates the credentials: the second hop to a separate SMS Provider


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and password, or a token, and where they came from. ``repr`` and messages never show secrets.

    Empty (all None) means the Kerberos ticket cache.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    #: where each came from, for messages: "RECONCILE_SITE_USERNAME", "reconcile.yaml:7: site.password"
    username_from: str = ""
    password_from: str = ""
    token_from: str = ""

    @property
    def has_password(self) -> bool:
        return self.username is not None and self.password is not None

    def describe(self) -> str:
        """Who is presented, without a secret: ``CORP\\svc-osd (password from RECONCILE_SITE_PASSWORD)``."""
        if self.token is not None:
            return f"a bearer token from {self.token_from}"
        if self.has_password:
            return f"{self.username} (password from {self.password_from})"
        return "the Kerberos ticket cache" + (f" {os.environ['KRB5CCNAME']}" if os.environ.get("KRB5CCNAME") else "")


@dataclass(frozen=True, slots=True)
class WinRMOptions:
    """The WinRM host that runs ConfigMgr cmdlets (Windows PowerShell 5.1 with the console installed)."""

    host: str
    port: int = 5986
    ssl: bool = True
    auth: WinRMAuth = WinRMAuth.NEGOTIATE
    credentials: Credentials = field(default_factory=Credentials)
    #: pypsrp's ``cert_validation``: a PEM file, True (the system's CAs) or False (``--insecure``)
    ca_bundle: Path | None = None
    insecure: bool = False
    #: ``Import-Module`` argument: the module name, or the path of ConfigurationManager.psd1 on the host
    configuration_manager_module: str = "ConfigurationManager"
    #: the CMSite drive's site code and SMS Provider; None: the site's code and the AdminService URL's host
    site_code: str | None = None
    provider_host: str | None = None

    @property
    def cert_validation(self) -> bool | str:
        if self.insecure:
            return False
        return str(self.ca_bundle) if self.ca_bundle is not None else True

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}/wsman"


@dataclass(frozen=True, slots=True)
class SiteOptions:
    """Everything needed to reach a site besides its target. The defaults open an embedded site as before.

    ``url`` is None for an embedded site (only ``read_only`` matters there). The AdminService client reads
    ``verify`` for TLS, ``auth`` and ``credentials``; the WinRM path reads ``winrm``.
    """

    url: str | None = None
    ca_bundle: Path | None = None
    insecure: bool = False
    auth: Auth = Auth.NEGOTIATE
    credentials: Credentials = field(default_factory=Credentials)
    read_only: bool = False
    #: send over REST what is unproven there on a real site (``site.restUnproven``), instead of WinRM
    rest_unproven: bool = False
    winrm: WinRMOptions | None = None
    #: seconds one HTTP request may take before it is a transient failure
    timeout: float = 60.0
    #: where each non-default setting came from ("--ca-bundle", "reconcile.yaml:4: site.caBundle", "SSL_CERT_FILE")
    origins: Mapping[str, str] = field(default_factory=dict)

    @property
    def verify(self) -> bool | str:
        """httpx's ``verify``: the CA bundle's path, True (the system's CAs) or False (``--insecure``)."""
        if self.insecure:
            return False
        return str(self.ca_bundle) if self.ca_bundle is not None else True

    def notices(self) -> list[str]:
        """Lines every run prints on stderr: an unverified connection is never silent."""
        lines = []
        if self.insecure and self.url:
            what = f"{self.url}" + (f" and the WinRM host {self.winrm.host}" if self.winrm else "")
            lines.append(f"warning: --insecure: the TLS certificate of {what} is not verified; anyone on the network "
                         "path can pose as the site, read what is sent to it and change what it answers. Use "
                         "--ca-bundle with the site's CA instead")
        if self.url and self.auth is not Auth.BEARER and self.credentials.token is not None:
            lines.append(f"warning: a bearer token is set ({self.credentials.token_from}) but --auth is "
                         f"{self.auth.value}: the token is not used")
        return lines

    def describe_auth(self) -> str:
        """The authentication this run tries, in words (for ``site check`` and for a 401)."""
        who = self.credentials.describe()
        if self.auth is Auth.BEARER:
            return f"bearer: {who}"
        if self.auth is Auth.NTLM:
            return f"NTLM as {who}"
        if self.auth is Auth.KERBEROS:
            return f"Kerberos (SPN HTTP/{self.host}) as {who}"
        if self.credentials.has_password:
            return f"Negotiate as {who}: Kerberos (SPN HTTP/{self.host}), then NTLM"
        return (f"Negotiate: Kerberos (SPN HTTP/{self.host}) with {who}; no NTLM fallback without "
                f"{ENV_USERNAME} and {ENV_PASSWORD}")

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "") if self.url else ""

    def ensure_writable(self, what: str, where: str | None = None) -> None:
        """Refuse ``what`` (a command or an operation) before any request when the site is read-only."""
        if not self.read_only:
            return
        origin = self.origins.get("read_only", "--read-only")
        site = where or self.url or "the site"
        raise SiteIsReadOnly(f"site {site} is read-only ({origin}): {what} would write to it, so nothing was "
                             "sent; plans, status, export and drift reports work. To write, drop --read-only "
                             "(and site.readOnly from reconcile.yaml)")


@dataclass(frozen=True, slots=True)
class SiteArguments:
    """What the command line said about the site; None (or False) means "not given"."""

    site: str | Path | None = None
    ca_bundle: Path | None = None
    insecure: bool = False
    auth: str | None = None
    read_only: bool = False


def normalize_site_url(text: str) -> str:
    """An AdminService URL as the tool keeps it (``https://host[:port]/…/AdminService``), or SiteOptionsError.

    HTTPS only (the AdminService serves nothing else); no user name or password inside it (they would be
    logged with it); no query or fragment; the path ends with ``AdminService`` (on the SMS Provider or a
    cloud management gateway) or ``AdminService_TokenAuth``.
    """
    shown = shorten(text)
    if len(text) > _MAX_URL:
        raise SiteOptionsError(f"site URL {shown} is longer than {_MAX_URL} characters")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise SiteOptionsError(f"site URL {shown} cannot be read: {exc}") from None
    if parts.scheme.lower() != "https":
        raise SiteOptionsError(f"site URL {shown} must start with https://: the AdminService is served over HTTPS "
                               "only (for an untrusted certificate, give its CA with --ca-bundle)")
    if parts.username is not None or parts.password is not None:
        raise SiteOptionsError(f"site URL {shorten(parts.hostname or '')} holds a user name or password; "
                               f"credentials never go in a URL: set {ENV_USERNAME} and {ENV_PASSWORD} (or kinit)")
    if not parts.hostname:
        raise SiteOptionsError(f"site URL {shown} names no host; write https://<SMS Provider>/AdminService")
    if parts.query or parts.fragment:
        raise SiteOptionsError(f"site URL {shown} has a query or fragment; write https://<SMS Provider>/AdminService")
    path = re.sub("/+", "/", parts.path).rstrip("/")
    if path.rsplit("/", 1)[-1].lower() not in _ADMINSERVICE_SEGMENTS:
        raise SiteOptionsError(f"site URL {shown} does not end with /AdminService; write "
                               "https://<SMS Provider>/AdminService (or the cloud management gateway's "
                               "…/AdminService URL)")
    host = parts.hostname.lower()
    netloc = f"[{host}]" if ":" in host else host
    return f"https://{netloc}{f':{port}' if port else ''}{path}"


def site_slug(url: str) -> str:
    """A file name for what is kept about a remote site: its host (and port), plus a digest of an unusual path."""
    parts = urlsplit(url)
    slug = re.sub(r"[^a-z0-9.-]", "_", (parts.hostname or "site").lower())
    if parts.port:
        slug += f"_{parts.port}"
    path = re.sub("/+", "/", parts.path).rstrip("/")
    if path.lower() != "/adminservice":
        slug += "-" + hashlib.sha256(path.encode()).hexdigest()[:8]
    return slug


def default_state_file(url: str) -> Path:
    """The state store of a remote site when ``--state`` is not given: ``.reconcile/<host>.state.db``.

    One file per site, named so a person sees which site it belongs to; two sites never share one (the
    ownership of one site's objects must not meet another's).
    """
    return STATE_FOLDER / f"{site_slug(url)}.state.db"


def resolve_site_options(arguments: SiteArguments, settings: SiteSettings | None = None,
                         policy: SecretsPolicy | None = None,
                         environ: Mapping[str, str] | None = None) -> tuple[str | Path | None, SiteOptions]:
    """The site target (None: the default embedded site) and its options, from every source.

    ``settings`` is ``reconcile.yaml``'s ``site:`` section and ``policy`` the secrets policy that its
    ``valueFrom`` references are read with. Credentials are read only for a URL (an embedded site has none).
    """
    env = os.environ if environ is None else environ
    section = settings.section if settings is not None else None
    origins: dict[str, str] = {}

    read_only = arguments.read_only or bool(section and section.read_only)
    if arguments.read_only:
        origins["read_only"] = "--read-only"
    elif read_only and settings is not None:
        origins["read_only"] = _at(settings, "site.readOnly")

    target: str | Path | None = arguments.site
    if isinstance(target, str) and not _looks_like_url(target):
        target = Path(target)
    if target is None and section is not None and section.url:
        target = section.url
        origins["url"] = _at(settings, "site.url")
    elif target is not None:
        origins["url"] = "--site"
    if not isinstance(target, str):
        for given, name in ((arguments.ca_bundle, "--ca-bundle"), (arguments.insecure, "--insecure"),
                            (arguments.auth, "--auth")):
            if given:
                raise SiteOptionsError(f"{name} is for a site URL (--site https://<SMS Provider>/AdminService); "
                                       f"{'--site names an embedded site file' if target else 'no site URL is set'}")
        return target, SiteOptions(read_only=read_only, origins=origins)

    try:
        url = normalize_site_url(target)
    except SiteOptionsError as exc:
        raise SiteOptionsError(f"{origins['url']}: {exc}") from None

    auth_text = arguments.auth or (section.auth if section is not None else None) or Auth.NEGOTIATE.value
    auth = Auth(auth_text)
    if arguments.auth:
        origins["auth"] = "--auth"
    elif section is not None and section.auth:
        origins["auth"] = _at(settings, "site.auth")

    if arguments.insecure and arguments.ca_bundle is not None:
        raise SiteOptionsError("--insecure and --ca-bundle contradict each other: --ca-bundle verifies the site's "
                               "certificate against that CA, --insecure verifies nothing; give one")
    ca_bundle = None
    if not arguments.insecure:
        ca_bundle = _ca_bundle(arguments, settings, env, origins)

    credentials = _site_credentials(auth, settings, policy, env)
    winrm = _winrm(settings, policy, env, credentials, arguments.insecure, origins) \
        if section is not None and section.winrm is not None else None
    options = SiteOptions(url=url, ca_bundle=ca_bundle, insecure=arguments.insecure, auth=auth,
                          credentials=credentials, read_only=read_only, winrm=winrm, origins=origins,
                          rest_unproven=bool(section is not None and section.rest_unproven))
    return url, options


def _looks_like_url(text: str) -> bool:
    return "://" in text[:16]


def _at(settings: SiteSettings | None, path: str) -> str:
    return settings.where(path) if settings is not None else path


def _ca_bundle(arguments: SiteArguments, settings: SiteSettings | None, env: Mapping[str, str],
               origins: dict[str, str]) -> Path | None:
    """``--ca-bundle``, else ``site.caBundle``, else ``SSL_CERT_FILE``; the file must be there to be read."""
    if arguments.ca_bundle is not None:
        path, origin = arguments.ca_bundle, "--ca-bundle"
    elif settings is not None and settings.section.ca_bundle:
        path, origin = settings.path(settings.section.ca_bundle), settings.where("site.caBundle")
    elif env.get(ENV_CA_FILE):
        path, origin = Path(env[ENV_CA_FILE]), ENV_CA_FILE
    else:
        return None
    _readable_pem(path, origin)
    origins["ca_bundle"] = origin
    return path


def _readable_pem(path: Path, origin: str) -> None:
    shown = shorten(str(path))
    if not path.is_file():
        raise SiteOptionsError(f"{origin}: CA bundle {shown} is not a file; export the site's CA certificate "
                               "(Base-64 encoded X.509) to a PEM file and name it")
    try:
        with path.open("rb") as handle:
            head = handle.read(1024 * 1024)
    except OSError as exc:
        raise SiteOptionsError(f"{origin}: CA bundle {shown} cannot be read: {exc.strerror or exc}") from None
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise SiteOptionsError(f"{origin}: CA bundle {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
                               "a DER .cer file is converted with 'openssl x509 -inform der -in ca.cer -out ca.pem'")


def _secret(ref: SecretRef, where: str, policy: SecretsPolicy | None) -> str:
    """The value behind a ``valueFrom`` of ``reconcile.yaml``, read within the manifests' secrets policy."""
    from reconciler.config import default_policy
    from reconciler.secrets import SecretUnavailable, read_secret

    source = ref.value_from.model_dump(exclude_none=True)
    try:
        return read_secret(source, _for_site(policy or default_policy(Path("manifests"))))
    except SecretUnavailable as exc:
        raise SiteOptionsError(f"{where}.valueFrom: {exc}") from None


def _for_site(policy: SecretsPolicy) -> SecretsPolicy:
    """The manifests' policy without the reservation of the site's own credentials (they are read here)."""
    reserved = getattr(policy, "reserved", None)
    return replace(policy, reserved=frozenset()) if reserved else policy  # type: ignore[call-arg]


def _credential(env: Mapping[str, str], variable: str, settings: SiteSettings | None, path: str,
                written: object, policy: SecretsPolicy | None) -> tuple[str | None, str]:
    """One credential field: the environment variable, else the file's value (text or ``valueFrom``)."""
    if env.get(variable):
        return env[variable], variable
    if written is None or settings is None:
        return None, ""
    where = settings.where(path)
    if isinstance(written, str):
        return written, where
    return _secret(written, settings.where(path), policy), where  # type: ignore[arg-type]


def _site_credentials(auth: Auth, settings: SiteSettings | None, policy: SecretsPolicy | None,
                      env: Mapping[str, str]) -> Credentials:
    section = settings.section if settings is not None else None
    if auth is Auth.BEARER:
        token, token_from = _credential(env, ENV_TOKEN, settings, "site.token",
                                        section.token if section else None, policy)
        if token is None:
            raise SiteOptionsError(f"--auth bearer needs a token: set {ENV_TOKEN} (an Entra ID access token for the "
                                   "cloud management gateway) or site.token.valueFrom in reconcile.yaml")
        return Credentials(token=token, token_from=token_from)
    username, username_from = _credential(env, ENV_USERNAME, settings, "site.username",
                                          section.username if section else None, policy)
    password, password_from = _credential(env, ENV_PASSWORD, settings, "site.password",
                                          section.password if section else None, policy)
    token = env.get(ENV_TOKEN) or None
    if (username is None) != (password is None):
        given, missing = (username_from, f"{ENV_PASSWORD} (or site.password.valueFrom)") if username is not None \
            else (password_from, f"{ENV_USERNAME} (or site.username)")
        raise SiteOptionsError(f"a user name and a password go together: {given} is set but {missing} is not")
    if auth is Auth.NTLM and username is None:
        raise SiteOptionsError(f"--auth ntlm needs a user name and password: set {ENV_USERNAME} (DOMAIN\\name) and "
                               f"{ENV_PASSWORD}, or site.username and site.password.valueFrom in reconcile.yaml")
    if username is not None:
        _check_username(username, username_from)
    return Credentials(username=username, password=password, token=token, username_from=username_from,
                       password_from=password_from, token_from=ENV_TOKEN if token else "")


def _check_username(username: str, origin: str) -> None:
    if len(username) > 256 or any(ord(c) < 0x20 for c in username) or not username.strip():
        raise SiteOptionsError(f"{origin}: user name {shorten(username)} is not DOMAIN\\name or name@REALM")


def _winrm(settings: SiteSettings | None, policy: SecretsPolicy | None, env: Mapping[str, str],
           site: Credentials, insecure: bool, origins: dict[str, str]) -> WinRMOptions:
    assert settings is not None and settings.section.winrm is not None
    section = settings.section.winrm
    auth = WinRMAuth(section.auth)
    username, username_from = _credential(env, ENV_WINRM_USERNAME, settings, "site.winrm.username",
                                          section.username, policy)
    password, password_from = _credential(env, ENV_WINRM_PASSWORD, settings, "site.winrm.password",
                                          section.password, policy)
    if (username is None) != (password is None):
        given = username_from if username is not None else password_from
        raise SiteOptionsError(f"{given}: the WinRM user name and password go together; set both "
                               f"({ENV_WINRM_USERNAME} and {ENV_WINRM_PASSWORD}, or site.winrm.username and "
                               "site.winrm.password.valueFrom)")
    if username is not None:
        _check_username(username, username_from)
        credentials = Credentials(username=username, password=password, username_from=username_from,
                                  password_from=password_from)
    elif site.has_password:
        credentials = replace(site, token=None, token_from="")  # the same administrative user, as a console would
    else:
        credentials = Credentials()
    if auth in (WinRMAuth.NTLM, WinRMAuth.CREDSSP) and not credentials.has_password:
        raise SiteOptionsError(f"{settings.where('site.winrm.auth')}: WinRM {auth.value} needs a user name and "
                               f"password: set {ENV_WINRM_USERNAME} and {ENV_WINRM_PASSWORD} (or the site's)")
    ca_bundle = None
    if section.ca_bundle and not insecure:
        ca_bundle = settings.path(section.ca_bundle)
        _readable_pem(ca_bundle, settings.where("site.winrm.caBundle"))
        origins["winrm.ca_bundle"] = settings.where("site.winrm.caBundle")
    port = section.port or (5986 if section.ssl else 5985)
    return WinRMOptions(host=section.host.lower(), port=port, ssl=section.ssl, auth=auth, credentials=credentials,
                        ca_bundle=ca_bundle, insecure=insecure,
                        configuration_manager_module=section.configuration_manager_module or "ConfigurationManager",
                        site_code=section.site_code.upper() if section.site_code else None,
                        provider_host=section.provider_host.lower() if section.provider_host else None)
