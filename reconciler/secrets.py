"""Reading the values behind ``valueFrom`` references, within the secrets policy.

Only two moments read a secret: apply, which writes it to the site, and a plan run with
``--refresh-secrets``, which hashes it with a key kept outside the state store to notice a rotated value
behind an unchanged reference. Neither keeps the value anywhere but in memory, and no message ever
contains it.

A manifest comes from a pull request author; the process that applies it runs with someone else's
files and environment. So a source is read only inside :class:`~reconciler.config.SecretsPolicy`: a file
inside the secrets folder (symlinks resolved), an environment variable on the allow-list. ``validate``
checks the same rules with the manifest's line; reading checks them again, so a plan made elsewhere (a
controller following a commit, an old plan) cannot read outside either.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets as random
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from reconciler.config import SecretsPolicy, default_policy, reserved_name
from reconciler.errors import ReconcilerError

#: ConfigMgr keeps at most this many characters in a variable value; no password or key is longer.
VALUE_LIMIT = 4000

#: A file secret is read up to this many bytes: the value limit in UTF-8's widest characters, a BOM and a
#: line break. Anything larger is refused unread (a link to /dev/zero never ends).
_FILE_READ_LIMIT = VALUE_LIMIT * 4 + 5

#: The key of the secret hashes, created in the secrets folder on first use unless HASH_KEY_ENV is set.
HASH_KEY_FILE = ".reconcile-hash-key"
HASH_KEY_ENV = "RECONCILE_SECRET_HASH_KEY"
_HASH_KEY_BYTES = 32


class SecretUnavailable(ReconcilerError):
    """A ``valueFrom`` source cannot be read: the variable is unset or the file is missing."""


class SecretRefused(SecretUnavailable):
    """A ``valueFrom`` source lies outside the secrets policy: it is never read."""


class SecretUnusable(SecretUnavailable):
    """A secret was read, but ConfigMgr cannot store its value (a control character, too long)."""


class HashKeyError(ReconcilerError):
    """The key of the secret hashes cannot be read or created."""


def describe(source: Mapping[str, Any]) -> str:
    """``env:NAME`` or ``file:PATH``: how state, journal and plans name a source."""
    return f"env:{source['env']}" if source.get("env") else f"file:{source['file']}"


def _shown(text: str, limit: int = 60) -> str:
    """A user value in a message: short ones whole, long ones as a prefix and their length."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text):,} characters)"


def _example(policy: SecretsPolicy, name: str) -> str:
    return f"{policy.relative}/{PurePosixPath(name).name or 'NAME'}"


def secret_file(path_text: str, policy: SecretsPolicy) -> Path:
    """Where ``valueFrom: {file: PATH}`` lives, by its spelling alone; SecretRefused when outside the folder.

    PATH is relative to the manifests folder and names a file inside its secrets folder
    (``secrets/join.txt``). When ``--secrets-dir`` moved the folder, the same spelling is read from there
    (``DIR/join.txt``), so a manifest never depends on where an operator keeps the folder.
    """
    shown = _shown(path_text)
    where = f"the secrets folder {policy.relative}/"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path_text):
        raise SecretRefused(f"file {shown} holds a control character (a NUL or a line break); a file secret is "
                            f"named by a plain path inside {where}, such as {_example(policy, 'NAME')}")
    pure = PurePosixPath(path_text)
    if pure.is_absolute() or path_text.startswith("~") or (len(path_text) > 1 and path_text[1] == ":"):
        raise SecretRefused(f"file {shown} is an absolute path; a file secret is a path relative to the manifests "
                            f"folder inside {where}, such as {_example(policy, path_text)}")
    parts = tuple(p for p in pure.parts if p != ".")
    if ".." in parts:
        raise SecretRefused(f"file {shown} climbs out with '..'; a file secret is read only from {where}, such as "
                            f"{_example(policy, path_text)}")
    prefix = PurePosixPath(policy.relative).parts
    if parts[:len(prefix)] != prefix or len(parts) <= len(prefix):
        raise SecretRefused(f"file {shown} is not in {where}; move it there and write "
                            f"{_example(policy, path_text)} (the folder is secrets.folder in reconcile.yaml, or "
                            "--secrets-dir)")
    rest = parts[len(prefix):]
    if rest[-1] == HASH_KEY_FILE:
        raise SecretRefused(f"file {shown} is the key of the secret hashes, never a secret's value")
    return policy.folder.joinpath(*rest)


def _inside(path: Path, policy: SecretsPolicy, shown: str) -> str:
    """The real path of ``path`` (symlinks resolved) when it stays inside the secrets folder."""
    real = os.path.realpath(path)
    folder = os.path.realpath(policy.folder)
    if policy.within is not None:
        root = os.path.realpath(policy.within)
        if os.path.commonpath([folder, root]) != root:
            raise SecretRefused(f"the secrets folder {policy.relative}/ is a link to a folder outside the manifests "
                                "folder; a folder elsewhere is named with --secrets-dir or RECONCILE_SECRETS_DIR")
    if os.path.commonpath([real, folder]) != folder or real == folder:
        raise SecretRefused(f"file {shown} is a link that leaves the secrets folder {policy.relative}/; only files "
                            "inside it are read")
    if os.path.basename(real) == HASH_KEY_FILE:
        raise SecretRefused(f"file {shown} is the key of the secret hashes, never a secret's value")
    for name in policy.reserved:
        if name.startswith("file:") and _same_file(name.removeprefix("file:"), real, policy):
            raise SecretRefused(f"file {shown} is (a link to) the site's own credentials (site: in reconcile.yaml); "
                                "a manifest may never read it")
    return real


def _same_file(path_text: str, real: str, policy: SecretsPolicy) -> bool:
    try:
        return os.path.realpath(secret_file(path_text, policy)) == real
    except SecretRefused:
        return False


def source_problem(source: Mapping[str, Any], policy: SecretsPolicy, look: bool = True) -> str | None:
    """Why the policy refuses a source, or None. ``look`` also follows links of files that exist."""
    try:
        if policy.reserved and reserved_name(dict(source)) in policy.reserved:
            raise SecretRefused(f"{describe(source)} holds the site's own credentials (site: in reconcile.yaml); a "
                                "manifest may never read it")
        if source.get("env"):
            name = str(source["env"])
            if not policy.env_allowed(name):
                raise SecretRefused(f"environment variable {_shown(name)} may not be read: secrets come from "
                                    f"{policy.describe_env_rule()}")
        else:
            path = secret_file(str(source["file"]), policy)
            if look and os.path.lexists(path):
                _inside(path, policy, _shown(str(source["file"])))
    except SecretRefused as exc:
        return str(exc)
    return None


def value_problem(value: str) -> str | None:
    """Why ConfigMgr cannot store a secret's value, or None. Never quotes the value.

    Sequence XML cannot hold most control characters, and no password, product key or PIN holds a line
    break or a tab: one in a secret is a mistake (a file with two lines, a pasted key), caught before the
    first write rather than as a broken sequence halfway through an apply.
    """
    if len(value) > VALUE_LIMIT:
        return f"is {len(value):,} characters; ConfigMgr keeps at most {VALUE_LIMIT:,}"
    for char in value:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            what = "a line break" if char in "\r\n" else "a tab" if char == "\t" else "a control character"
            return (f"holds {what} (U+{code:04X}); a secret is one line of printable characters (a file secret "
                    "may end with one line break)")
        if 0xD800 <= code <= 0xDFFF:
            return "holds bytes that are not UTF-8 text"
        if code in (0xFFFE, 0xFFFF):
            return f"holds U+{code:04X}, which task sequence XML cannot carry"
    return None


def _kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a special file")


def _read_file(path: Path, policy: SecretsPolicy, shown: str) -> str:
    real = _inside(path, policy, shown)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not a regular file.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise SecretUnavailable(f"secret file {shown} cannot be read ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # checked before fdopen, which refuses a folder with its own error
        os.close(fd)
        raise SecretRefused(f"secret file {shown} is {_kind(info.st_mode)}, not a regular file; a secret is a file "
                            "of text")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > _FILE_READ_LIMIT:
            raise SecretUnusable(f"secret file {shown} is {info.st_size:,} bytes; a secret holds at most "
                                 f"{VALUE_LIMIT:,} characters")
        raw = handle.read(_FILE_READ_LIMIT + 1)
    if len(raw) > _FILE_READ_LIMIT:
        raise SecretUnusable(f"secret file {shown} is larger than {_FILE_READ_LIMIT:,} bytes; a secret holds at "
                             f"most {VALUE_LIMIT:,} characters")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SecretUnusable(f"secret file {shown} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


def read_secret(source: Mapping[str, Any], policy: SecretsPolicy) -> str:
    """The value of a source, if the policy allows it and ConfigMgr can store it."""
    ref = describe(source)
    if not ref.isprintable():  # a NUL or a line break in a name would break the one-line message
        ref = repr(ref)
    problem = source_problem(source, policy, look=False)
    if problem:
        raise SecretRefused(f"{problem} (valueFrom {ref})")
    if source.get("env"):
        name = source["env"]
        if name not in os.environ:
            shown = name if name.isprintable() else repr(name)
            raise SecretUnavailable(f"environment variable {shown} is not set (valueFrom: {{env: {shown}}})")
        value = os.environ[name]
    else:
        value = _read_file(secret_file(str(source["file"]), policy), policy, _shown(str(source["file"])))
    problem = value_problem(value)
    if problem:
        raise SecretUnusable(f"the secret from {ref} {problem}")
    return value


def _decode_key(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise HashKeyError(f"{where} is neither hex nor base64") from None
    if len(key) < 16:
        raise HashKeyError(f"{where} holds {len(key)} bytes; the key of the secret hashes needs at least 16")
    return key


def hash_key(policy: SecretsPolicy) -> bytes:
    """The key of the secret hashes: ``RECONCILE_SECRET_HASH_KEY``, else a file in the secrets folder.

    The key never enters the state store, so the hashes there cannot be tested against guesses (a 6-digit
    PIN) by someone holding only the store. The file is made on first use, readable by its owner only;
    two processes starting at once agree on one key (the file appears whole or not at all).
    """
    if os.environ.get(HASH_KEY_ENV):
        return _decode_key(os.environ[HASH_KEY_ENV], f"environment variable {HASH_KEY_ENV}")
    path = policy.folder / HASH_KEY_FILE
    try:
        if not path.exists():
            if not policy.folder.exists():
                # A folder this tool makes inside a repository keeps itself out of Git, key included.
                policy.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError), (policy.folder / ".gitignore").open("x") as ignore:
                    ignore.write("*\n")
            temporary = policy.folder / f"{HASH_KEY_FILE}.{os.getpid()}.{random.token_hex(4)}"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(random.token_hex(_HASH_KEY_BYTES) + "\n")
            try:
                os.link(temporary, path)  # fails when another process made the key first: theirs is used
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        with path.open("rb") as handle:
            text = handle.read(1024).decode("ascii", errors="replace")
    except OSError as exc:
        raise HashKeyError(f"the key of the secret hashes {path} cannot be read or created "
                           f"({exc.strerror or exc}); make the secrets folder writable or set {HASH_KEY_ENV}") from None
    return _decode_key(text, str(path))


class SecretReader:
    """Reads each source once per run within a policy, so a plan and its checks see one value."""

    def __init__(self, policy: SecretsPolicy) -> None:
        self.policy = policy
        self._seen: dict[tuple[str, str], str] = {}
        self._key: bytes | None = None

    def __call__(self, source: Mapping[str, Any]) -> str:
        key = ("env", source["env"]) if source.get("env") else ("file", str(source["file"]))
        if key not in self._seen:
            self._seen[key] = read_secret(source, self.policy)
        return self._seen[key]

    @property
    def hash_key(self) -> bytes:
        """Loaded on first use: only a run that reads secrets needs it."""
        if self._key is None:
            self._key = hash_key(self.policy)
        return self._key


def reader(base: Path, policy: SecretsPolicy | None = None, with_key: bool = False) -> SecretReader:
    """A reader for manifests under ``base``; without a policy, the defaults (``base/secrets``, OSD_…).

    ``with_key`` loads the hash key now (HashKeyError), for a plan that will compare hashes: a missing key
    is then one error before planning rather than one per object.
    """
    read = SecretReader(policy or default_policy(base))
    if with_key:
        read.hash_key  # noqa: B018 - loaded for its error
    return read
