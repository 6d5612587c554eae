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
from typing import Any

from pydantic import Field, ValidationError, field_validator

from reconciler.errors import ReconcilerError
from reconciler.models.base import Model

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


class ConfigFile(Model):
    """The schema of ``reconcile.yaml``."""

    secrets: _SecretsSection = Field(default_factory=_SecretsSection)
    limits: _LimitsSection = Field(default_factory=_LimitsSection)


#: Environment variables of the tool's own settings: never a secret's source, whatever the allow-list says
#: (``RECONCILE_SECRET_HASH_KEY`` starts with an allowed prefix, and a manifest must not copy it into a site).
RESERVED_ENV_NAMES = frozenset({"RECONCILE_SECRET_HASH_KEY", "RECONCILE_SECRETS_DIR"})


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
class Config:
    secrets: SecretsPolicy
    limits: Limits = field(default_factory=Limits)
    #: the file the settings came from, or None for the defaults
    source: Path | None = None


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
                           Path(parsed.secrets.folder).as_posix(), _within(root, secrets_dir))
    return Config(policy, Limits(parsed.limits.max_manifest_bytes), path)


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
            allowed = "; allowed: secrets (folder, env.prefixes, env.names), limits (maxManifestBytes)"
        lines.append(f"{at}: {format_path(loc)}: {message}{allowed}")
    return "\n".join(lines)
