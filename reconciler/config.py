"""``reconcile.yaml``: the settings of a manifests repository that are not per command.

The file sits in the manifests folder (beside ``task-sequences/`` and ``secrets/``) and is read from the
disk of the machine that runs the tool, never from a Git ref: a pull request can change manifests, but it
cannot widen what the controller may read (the secrets folder, the environment variables a ``valueFrom``
may name) by changing this file on its branch. With ``--repo``, the local folder of the same path is read,
as secrets are. Every field is optional; without the file the defaults below hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from reconciler.errors import ReconcilerError
from reconciler.models.base import Model, SecretRef

CONFIG_FILE = "reconcile.yaml"

#: Environment variables a ``valueFrom: {env: …}`` may name without being listed: the process that applies
#: runs with its own credentials in its environment (cloud tokens, CI secrets), which a manifest must not read.
DEFAULT_ENV_PREFIXES = ("OSD_", "RECONCILE_SECRET_")

#: Where file secrets live, relative to the manifests folder.
DEFAULT_SECRETS_FOLDER = "secrets"

#: The largest manifest file read. The largest real sequence in the corpus is far below 1 MB; ConfigMgr refuses a
#: sequence over 2 MB, and a manifest is smaller than its XML.
DEFAULT_MAX_MANIFEST_BYTES = 10 * 1024 * 1024

#: The largest ``reconcile.yaml`` read: it holds a few settings.
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(ReconcilerError):
    """``reconcile.yaml`` cannot be used; the message names the file, the line and the field."""


class _EnvAllowList(Model):
    prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_ENV_PREFIXES),
                                description="Environment variables starting with one of these may be named.")
    names: list[str] = Field(default_factory=list, description="Further environment variables, by exact name.")

    @field_validator("prefixes", "names")
    @classmethod
    def _not_empty(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value or not value.replace("_", "A").isalnum():
                raise ValueError(f"{value!r} is not an environment variable name (letters, digits and '_')")
        return values


class _SecretsSection(Model):
    folder: str = Field(default=DEFAULT_SECRETS_FOLDER,
                        description="Folder of file secrets, relative to the manifests folder and inside it.")
    env: _EnvAllowList = Field(default_factory=_EnvAllowList)

    @field_validator("folder")
    @classmethod
    def _relative(cls, value: str) -> str:
        path = Path(value)
        if not value or path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a folder inside the manifests folder (relative, without '..'); "
                             "a folder elsewhere is given with --secrets-dir or RECONCILE_SECRETS_DIR")
        return value


class _LimitsSection(Model):
    max_manifest_bytes: int = Field(default=DEFAULT_MAX_MANIFEST_BYTES, ge=1024, le=1024**3,
                                    description="Largest manifest file read, in bytes.")


def _credential(value: Any) -> Any:
    """A password or token in ``reconcile.yaml`` is a reference only: the file sits beside the manifests."""
    if isinstance(value, str):
        raise PydanticCustomError(
            "plaintext_credential",
            "holds a plaintext credential; reconcile.yaml names where it is read from: write "
            "{valueFrom: {env: NAME}} or {valueFrom: {file: secrets/NAME}}, or set it in the environment "
            "(RECONCILE_SITE_PASSWORD, RECONCILE_SITE_TOKEN, RECONCILE_WINRM_PASSWORD, RECONCILE_STATE_PASSWORD)")
    return value


#: A password or a token: only ``{valueFrom: …}``, read with the secrets policy when the site is opened.
Credential = Annotated[SecretRef | None, BeforeValidator(_credential)]


def _username(value: Any) -> Any:
    """A user name is not a secret, so it may be written out; it may also come from a ``valueFrom``."""
    if value is None or isinstance(value, str):
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError("empty_username", "is empty; write DOMAIN\\name or name@REALM, or leave it out")
        return value
    if isinstance(value, dict):
        return SecretRef.model_validate(value)
    raise PydanticCustomError("username_type", "must be DOMAIN\\name, name@REALM or {valueFrom: {env: NAME}}")


#: A user name: ``CORP\\svc-osd``, ``svc-osd@CORP.EXAMPLE.COM``, or ``{valueFrom: …}``.
Username = Annotated[Any, BeforeValidator(_username)]


class WinRMSection(Model):
    """``site.winrm``: the host with the ConfigMgr console that runs what the AdminService cannot."""

    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-]+$",
                      description="Host name of a Windows server with the ConfigMgr console and WinRM enabled.")
    port: int | None = Field(default=None, ge=1, le=65535,
                             description="WinRM port (default 5986 over HTTPS, 5985 with ssl: false).")
    ssl: bool = Field(default=True, description="WinRM over HTTPS (5986); false uses HTTP with message encryption.")
    auth: Literal["negotiate", "kerberos", "ntlm", "credssp"] = "negotiate"
    username: Username = None
    password: Credential = None
    ca_bundle: str | None = Field(default=None, min_length=1,
                                  description="PEM file of the CA that issued the WinRM listener's certificate.")
    configuration_manager_module: str | None = Field(
        default=None, min_length=1, max_length=260,
        description="Path of ConfigurationManager.psd1 on the host (default: the module name, found through "
                    "the console's installation).")
    site_code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{3}$",
                                  description="Site code of the CMSite drive (default: the site's own).")
    provider_host: str | None = Field(default=None, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-]+$",
                                      description="SMS Provider the CMSite drive connects to (default: the "
                                                  "AdminService URL's host).")


class SiteSection(Model):
    """``site``: which site to connect to and how; the command line wins over every field."""

    url: str | None = Field(default=None, description="https://<SMS Provider>/AdminService (or a CMG's URL).")
    ca_bundle: str | None = Field(default=None, min_length=1,
                                  description="PEM file of the site's CA, relative to this file's folder.")
    auth: Literal["negotiate", "kerberos", "ntlm", "bearer"] | None = None
    read_only: bool = Field(default=False, description="Refuse every write to the site (plans and reports only).")
    rest_unproven: bool = Field(default=False, description="Send over REST what no real site was seen to accept "
                                "there (task sequence steps, schedules, masked variables) instead of WinRM.")
    username: Username = None
    password: Credential = None
    token: Credential = None
    winrm: WinRMSection | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from reconciler.site.options import SiteOptionsError, normalize_site_url

        try:
            return normalize_site_url(value)
        except SiteOptionsError as exc:
            raise ValueError(str(exc)) from None


def _collection_entry(value: Any) -> Any:
    """A collection in the scope: its console name or ID as text, or ``{name: …}`` / ``{id: …}``."""
    if isinstance(value, dict) and len(value) == 1 and set(value) <= {"name", "id"}:
        text = next(iter(value.values()))
        if isinstance(text, str) and text.strip():
            return text
    if isinstance(value, str) and value.strip():
        return value
    raise PydanticCustomError("scope_collection", "must be a collection's console name or ID (OSD Pilot, PS100021), "
                                                  "or {name: …} / {id: …}")


ScopeCollection = Annotated[str, BeforeValidator(_collection_entry)]


class ScopeSection(Model):
    """``scope``: what the manifests of this repository may touch on the site; a list left out allows anything.

    An empty list allows nothing. Folders are console paths (``OSD/Production``); a folder allows its
    subfolders; names compare without case, as the console's do.
    """

    folders: list[str] | None = Field(default=None, description="Console folders task sequences may live in "
                                                                "(and their subfolders).")
    collections: list[ScopeCollection] | None = Field(
        default=None, description="Collections (console name or ID) deployments and collection variables may target.")
    distribution_points: list[str] | None = Field(default=None, description="Distribution points content may go to.")
    distribution_point_groups: list[str] | None = Field(default=None,
                                                        description="DP groups content may go to (and their members).")

    @field_validator("folders")
    @classmethod
    def _folders(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            if not value.strip() or ".." in value.replace("\\", "/").split("/"):
                raise ValueError(f"{value[:60]!r} is not a console folder path such as OSD/Production")
        return values


def _notify_url(value: Any) -> Any:
    """A webhook URL as text (only for a webhook without credentials in it), or ``{valueFrom: …}``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return SecretRef.model_validate(value)
    raise PydanticCustomError("notify_url", "must be an https:// URL or {valueFrom: {env: NAME}}")


NotifyUrl = Annotated[Any, BeforeValidator(_notify_url)]


class NotificationTarget(Model):
    """One target of ``notifications.targets``: a webhook, Slack, Teams or e-mail."""

    type: Literal["webhook", "slack", "teams", "email"]
    url: NotifyUrl = Field(default=None, description="Webhook URL; Slack's and Teams' URLs are credentials, so only "
                                                     "{valueFrom: …} for them and for any URL with a token.")
    host: str | None = Field(default=None, min_length=1, max_length=253, description="SMTP server (email).")
    port: int | None = Field(default=None, ge=1, le=65535, description="SMTP port (default 587, 465 for ssl, 25).")
    tls: Literal["none", "starttls", "ssl"] = "starttls"
    sender: str | None = Field(default=None, alias="from", description="Sender address (email).")
    to: list[str] = Field(default_factory=list, description="Recipients (email).")
    username: str | None = None
    password: Credential = None
    ca_bundle: str | None = Field(default=None, min_length=1, description="PEM file of the SMTP server's CA.")

    @model_validator(mode="after")
    def _complete(self) -> NotificationTarget:
        if self.type == "email":
            if not (self.host and self.sender and self.to):
                raise PydanticCustomError("notify_email", "an email target needs host, from and to")
            return self
        if self.url is None:
            raise PydanticCustomError("notify_url", "a {kind} target needs url", {"kind": self.type})
        if isinstance(self.url, str):
            from urllib.parse import urlsplit

            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise PydanticCustomError("notify_url", "must be an http(s):// URL")
            if self.type != "webhook" or parts.username or parts.password or parts.query:
                raise PydanticCustomError(
                    "plaintext_credential", "url holds a credential: a {kind} URL {why} is read from "
                    "{valueFrom: {env: NAME}} or {valueFrom: {file: secrets/NAME}}, never written here",
                    {"kind": self.type, "why": "(its path is the token)" if self.type != "webhook" else
                     "with a user, a password or a query"})
        return self


class NotificationsSection(Model):
    """``notifications``: where the controller says that something changed state."""

    link: str | None = Field(default=None, description="Base URL of the web view a notice links to (default: the "
                                                       "controller's --listen address).")
    targets: list[NotificationTarget] = Field(default_factory=list)


class StateSection(Model):
    """``state``: a state store shared by the controllers of several hosts (PostgreSQL); ``--state`` wins."""

    url: str = Field(description="postgresql://USER@HOST:5432/DATABASE (no password in it; sslmode and other libpq "
                                 "settings as query parameters).")
    password: Credential = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from reconciler.state import StateError
        from reconciler.state.postgres import check_url, is_postgres_url

        if not is_postgres_url(value):
            raise ValueError("must be a postgresql:// URL (a state file is named with --state PATH)")
        try:
            check_url(value)
        except StateError as exc:
            raise ValueError(str(exc)) from None
        return value


class ConfigFile(Model):
    """The schema of ``reconcile.yaml``."""

    secrets: _SecretsSection = Field(default_factory=_SecretsSection)
    limits: _LimitsSection = Field(default_factory=_LimitsSection)
    site: SiteSection | None = None
    scope: ScopeSection | None = None
    notifications: NotificationsSection | None = None
    state: StateSection | None = None


#: Environment variables of the tool's own settings: never a secret's source, whatever the allow-list says
#: (``RECONCILE_SECRET_HASH_KEY`` starts with an allowed prefix, and a manifest must not copy it into a site).
RESERVED_ENV_NAMES = frozenset({"RECONCILE_SECRET_HASH_KEY", "RECONCILE_SECRETS_DIR", "RECONCILE_SITE_USERNAME",
                                "RECONCILE_SITE_PASSWORD", "RECONCILE_SITE_TOKEN", "RECONCILE_WINRM_USERNAME",
                                "RECONCILE_WINRM_PASSWORD", "RECONCILE_SERVE_PASSWORD",
                                "RECONCILE_STATE_PASSWORD"})


@dataclass(frozen=True, slots=True)
class SecretsPolicy:
    """Where secrets may come from. Nothing outside it is read, whatever a manifest names."""

    folder: Path
    env_prefixes: tuple[str, ...] = DEFAULT_ENV_PREFIXES
    env_names: frozenset[str] = frozenset()
    #: how manifests spell the folder: a ``valueFrom.file`` path starts with it (``secrets/join.txt``), also
    #: when ``--secrets-dir`` puts the folder itself elsewhere
    relative: str = DEFAULT_SECRETS_FOLDER
    #: the manifests folder, when the secrets folder is inside it: a checked-out branch may make ``secrets``
    #: a link, and the real folder must still lie within (None when --secrets-dir chose the folder)
    within: Path | None = None
    #: sources that hold the site's own credentials (``site.*.valueFrom``, as ``env:NAME`` / ``file:PATH``): a
    #: manifest may never read them, or a pull request could copy the site's password into a variable
    reserved: frozenset[str] = frozenset()

    def env_allowed(self, name: str) -> bool:
        if name in RESERVED_ENV_NAMES:
            return False
        return name in self.env_names or any(name.startswith(prefix) for prefix in self.env_prefixes)

    def describe_env_rule(self) -> str:
        """The allow-list in words, for messages that refuse a name."""
        parts = [f"names starting with {', '.join(self.env_prefixes)}"] if self.env_prefixes else []
        if self.env_names:
            parts.append(f"the names listed in {CONFIG_FILE} (secrets.env.names)")
        rule = " or ".join(parts) if parts else "no environment variable"
        return f"{rule}; list another under secrets.env.names in {CONFIG_FILE}"


@dataclass(frozen=True, slots=True)
class Limits:
    max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """The ``site:`` section as written, validated; credentials are still references, read when the site opens.

    Relative paths (``caBundle``) are resolved against the file's folder. ``lines`` holds where each field was
    written, so a problem found later (a secret that cannot be read, a CA bundle that is missing) names
    ``file:line: field`` as a validation error does.
    """

    section: SiteSection
    file: Path
    lines: dict[str, int] = field(default_factory=dict)

    def where(self, path: str) -> str:
        """``reconcile.yaml:12: site.password`` (the deepest written part of ``path`` decides the line)."""
        parts = path.split(".")
        while parts and ".".join(parts) not in self.lines:
            parts.pop()
        line = self.lines.get(".".join(parts)) if parts else None
        return f"{self.file}:{line}: {path}" if line else f"{self.file}: {path}"

    def path(self, text: str) -> Path:
        """A path written in the file: relative ones are relative to the file's folder."""
        written = Path(os.path.expanduser(text))
        return written if written.is_absolute() else Path(os.path.abspath(self.file.parent / written))


#: The lists of ``scope:``, as ``reconcile.yaml`` spells them, in the order a plan header names them.
SCOPE_LISTS = ("folders", "collections", "distributionPoints", "distributionPointGroups")


@dataclass(frozen=True, slots=True)
class Scope:
    """What the manifests may touch (``scope:``): each list, or None where the file leaves it out (anything).

    It is data the planner receives; ``lines`` keeps where each list was written, so a blocked item names the
    rule as ``reconcile.yaml:7: scope.collections``.
    """

    file: Path
    folders: tuple[str, ...] | None = None
    collections: tuple[str, ...] | None = None
    distribution_points: tuple[str, ...] | None = None
    distribution_point_groups: tuple[str, ...] | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def rule(self, name: str) -> str:
        """``reconcile.yaml:7: scope.collections`` for a list named as the file spells it."""
        line = self.lines.get(f"scope.{name}") or self.lines.get("scope")
        return f"{self.file}:{line}: scope.{name}" if line else f"{self.file}: scope.{name}"

    def lists(self) -> dict[str, tuple[str, ...] | None]:
        """Each list by the name the file spells it (None: not restricted)."""
        return {"folders": self.folders, "collections": self.collections,
                "distributionPoints": self.distribution_points,
                "distributionPointGroups": self.distribution_point_groups}


@dataclass(frozen=True, slots=True)
class Config:
    secrets: SecretsPolicy
    limits: Limits = field(default_factory=Limits)
    #: the file the settings came from, or None for the defaults
    source: Path | None = None
    #: the ``site:`` section, or None when the file has none
    site: SiteSettings | None = None
    #: the ``scope:`` section, or None when the file has none: the manifests may then touch anything
    scope: Scope | None = None
    #: the ``notifications:`` section as written (URLs and passwords still references), and the file's lines
    notifications: NotificationsSection | None = None
    notification_lines: dict[str, int] = field(default_factory=dict)
    #: the ``state:`` section (a shared PostgreSQL store) as written, its password still a reference
    state: StateSection | None = None
    state_lines: dict[str, int] = field(default_factory=dict)


def manifests_root(path: Path) -> Path:
    """The manifests folder a PATH argument names (a single manifest file names its folder)."""
    return path.parent if path.is_file() else path


def default_config(root: Path, secrets_dir: Path | None = None) -> Config:
    return Config(SecretsPolicy(_secrets_folder(root, DEFAULT_SECRETS_FOLDER, secrets_dir),
                                within=_within(root, secrets_dir)))


def default_policy(root: Path) -> SecretsPolicy:
    """The secrets policy of manifests under ``root`` when no settings were passed down (library callers)."""
    return default_config(root).secrets


def _within(root: Path, override: Path | None) -> Path | None:
    chosen = override or os.environ.get("RECONCILE_SECRETS_DIR")
    return None if chosen else Path(os.path.abspath(root))


def _secrets_folder(root: Path, folder: str, override: Path | None) -> Path:
    chosen = override or (Path(os.environ["RECONCILE_SECRETS_DIR"]) if os.environ.get("RECONCILE_SECRETS_DIR")
                          else root / folder)
    return Path(os.path.abspath(chosen))


def load_config(root: Path, config_file: Path | None = None, secrets_dir: Path | None = None) -> Config:
    """The settings for manifests under ``root``: ``config_file``, else ``root/reconcile.yaml``, else defaults.

    ``secrets_dir`` (``--secrets-dir``) and ``RECONCILE_SECRETS_DIR`` name a secrets folder outside the
    manifests; they are the operator's choice, so they may point anywhere.
    """
    path = config_file or root / CONFIG_FILE
    if config_file is None and not path.is_file():
        return default_config(root, secrets_dir)
    data = _read(path)
    try:
        parsed = ConfigFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(_describe(path, data, exc)) from None
    policy = SecretsPolicy(_secrets_folder(root, parsed.secrets.folder, secrets_dir),
                           tuple(parsed.secrets.env.prefixes), frozenset(parsed.secrets.env.names),
                           Path(parsed.secrets.folder).as_posix(), _within(root, secrets_dir),
                           _site_sources(parsed.site) | _notification_sources(parsed.notifications)
                           | _state_sources(parsed.state))
    site = SiteSettings(parsed.site, path, _site_lines(path, data)) if parsed.site is not None else None
    notifications = parsed.notifications
    lines = _lines(path, data, "notifications", ("link", "targets")) if notifications is not None else {}
    return Config(policy, Limits(parsed.limits.max_manifest_bytes), path, site, _scope(parsed.scope, path, data),
                  notifications, lines, parsed.state,
                  _lines(path, data, "state", ("url", "password", "password.valueFrom")) if parsed.state else {})


def _state_sources(section: StateSection | None) -> frozenset[str]:
    """The ``valueFrom`` source of the state store's password: a manifest may never read it."""
    if section is None or not isinstance(section.password, SecretRef):
        return frozenset()
    return frozenset({reserved_name(section.password.value_from.model_dump(exclude_none=True))})


def _notification_sources(section: NotificationsSection | None) -> frozenset[str]:
    """The ``valueFrom`` sources of notification URLs and passwords: a manifest may not read them either (a
    Slack webhook URL is as good as a password to whoever posts to it)."""
    if section is None:
        return frozenset()
    refs = [r for t in section.targets for r in (t.url, t.password) if isinstance(r, SecretRef)]
    return frozenset(reserved_name(ref.value_from.model_dump(exclude_none=True)) for ref in refs)


def _scope(section: ScopeSection | None, path: Path, data: Any) -> Scope | None:
    if section is None:
        return None

    def listed(values: list[str] | None) -> tuple[str, ...] | None:
        return None if values is None else tuple(values)

    return Scope(path, listed(section.folders), listed(section.collections), listed(section.distribution_points),
                 listed(section.distribution_point_groups), _lines(path, data, "scope", SCOPE_LISTS))


#: The fields of the ``site:`` section whose line a message may name.
_SITE_FIELDS = ("url", "caBundle", "auth", "readOnly", "restUnproven", "username", "password", "token", "winrm",
                "username.valueFrom", "password.valueFrom", "token.valueFrom", "winrm.host", "winrm.port",
                "winrm.ssl", "winrm.auth", "winrm.username", "winrm.password", "winrm.username.valueFrom",
                "winrm.password.valueFrom", "winrm.caBundle", "winrm.configurationManagerModule", "winrm.siteCode",
                "winrm.providerHost")


def _site_sources(section: SiteSection | None) -> frozenset[str]:
    """The ``valueFrom`` sources of the site's credentials, as :func:`reserved_name` spells them."""
    if section is None:
        return frozenset()
    refs = [section.username, section.password, section.token]
    if section.winrm is not None:
        refs += [section.winrm.username, section.winrm.password]
    return frozenset(reserved_name(ref.value_from.model_dump(exclude_none=True))
                     for ref in refs if isinstance(ref, SecretRef))


def reserved_name(source: dict[str, Any]) -> str:
    """``env:NAME`` or ``file:a/b`` (``./`` and doubled slashes dropped): how a reserved source is compared."""
    if source.get("env"):
        return f"env:{source['env']}"
    parts = [p for p in str(source.get("file", "")).replace("\\", "/").split("/") if p not in ("", ".")]
    return "file:" + "/".join(parts)


def _site_lines(path: Path, data: Any) -> dict[str, int]:
    """The line of each field of the ``site:`` section that is written (only those: a missing one has none)."""
    return _lines(path, data, "site", _SITE_FIELDS)


def _lines(path: Path, data: Any, section: str, fields: tuple[str, ...]) -> dict[str, int]:
    """The line of each written field of a section, keyed ``section.field`` (and the section's own line)."""
    from reconciler.source.yamlfile import Locator

    try:
        locator = Locator(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return {}
    lines: dict[str, int] = {}
    for name in ("", *fields):
        parts = (section, *name.split(".")) if name else (section,)
        node = data
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        found = locator.locate(0, parts) if node is not None else None
        if found is not None:
            lines[".".join(parts)] = found[0]
    return lines


def _read(path: Path) -> Any:
    from reconciler.source.yamlfile import YamlProblem, decode, load_documents

    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; a settings file holds a few settings")
    try:
        decode(raw, str(path))
        documents = list(load_documents(raw))
    except YamlProblem as problem:
        where = f"{path}:{problem.line}" if problem.line else str(path)
        raise ConfigError(f"{where}: {problem.message}") from None
    if len(documents) > 1:
        raise ConfigError(f"{path}:{documents[1].line}: holds {len(documents)} documents; {CONFIG_FILE} holds one")
    data = documents[0].data if documents else None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings (secrets, limits), found {type(data).__name__}")
    return data


def _describe(path: Path, data: Any, exc: ValidationError) -> str:
    from reconciler.source.loader import format_path
    from reconciler.source.yamlfile import locate

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        text = ""
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
        where = locate(text, 0, loc) if text else None
        at = f"{path}:{where[0]}" if where else str(path)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        allowed = ""
        if error["type"] == "extra_forbidden":
            allowed = ("; allowed: secrets (folder, env.prefixes, env.names), limits (maxManifestBytes), site (url, "
                       "caBundle, auth, readOnly, restUnproven, username, password, token, winrm: host, port, ssl, "
                       "auth, username, password, caBundle, configurationManagerModule, siteCode, providerHost), "
                       "scope (folders, collections, distributionPoints, distributionPointGroups), notifications "
                       "(link, targets: type, url, to, from, host, port, username, password, tls), state (url, "
                       "password)")
        lines.append(f"{at}: {format_path(loc)}: {message}{allowed}")
    return "\n".join(lines)
