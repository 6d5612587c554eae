"""Reading the values behind ``valueFrom`` references.

Only two moments read a secret: apply, which writes it to the site, and a plan run with
``--refresh-secrets``, which hashes it with the state store's salt to notice a rotated value behind an
unchanged reference. Neither keeps the value anywhere but in memory, and no message ever contains it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError


class SecretUnavailable(ReconcilerError):
    """A ``valueFrom`` source cannot be read: the variable is unset or the file is missing."""


#: Reads the value of one ``valueFrom`` source ({"env": NAME} or {"file": PATH}).
SecretReader = Callable[[Mapping[str, Any]], str]


def describe(source: Mapping[str, Any]) -> str:
    """``env:NAME`` or ``file:PATH``: how state, journal and plans name a source."""
    return f"env:{source['env']}" if source.get("env") else f"file:{source['file']}"


def read_secret(source: Mapping[str, Any], base: Path) -> str:
    """The value of a source; a relative file path is read from ``base`` (the manifests folder)."""
    if source.get("env"):
        name = source["env"]
        if name not in os.environ:
            raise SecretUnavailable(f"environment variable {name} is not set (valueFrom: {{env: {name}}})")
        return os.environ[name]
    path = Path(source["file"])
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SecretUnavailable(f"secret file {path} cannot be read ({exc.strerror or exc})") from None


def reader(base: Path) -> SecretReader:
    """A reader that reads each source once per run, so a plan and its checks see one value."""
    seen: dict[tuple[str, str], str] = {}

    def read(source: Mapping[str, Any]) -> str:
        key = ("env", source["env"]) if source.get("env") else ("file", str(source["file"]))
        if key not in seen:
            seen[key] = read_secret(source, base)
        return seen[key]

    return read
