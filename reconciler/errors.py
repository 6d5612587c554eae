"""Typed errors and findings.

Every problem the tool reports carries where a person fixes it (file, line, column, field path)
and what is allowed, so that a message can be acted on without reading the code.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a document or value came from: a file (or ``ref:path``) and a 1-based line."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One validation result. ``path`` is the field path inside the document (``spec.steps[2].name``)."""

    severity: Severity
    source: Source
    message: str
    path: str = ""
    rule: str = ""
    object: str = ""  # "Kind/name" when known: identity first in every message

    def render(self) -> str:
        where = str(self.source)
        who = f"{self.object}: " if self.object else ""
        at = f"{self.path}: " if self.path else ""
        return f"{where}: {self.severity.value}: {who}{at}{self.message}"

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "file": self.source.file,
            "line": self.source.line,
            "column": self.source.column,
            "object": self.object or None,
            "path": self.path or None,
            "rule": self.rule or None,
            "message": self.message,
        }


#: How much of a user's value a message quotes. A message echoing a 50 MB description would be 50 MB long.
QUOTE_CHARS = 60


def shorten(value: object, limit: int = QUOTE_CHARS) -> str:
    """A value as a message quotes it: its repr when short, else the repr of a prefix and the length.

    Whatever the value's size, the result stays near ``limit`` characters, and a huge value is never copied
    whole (no repr of it is made).
    """
    if isinstance(value, str | bytes):
        if len(value) <= limit:
            return repr(value)
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:limit]!r}… ({len(value):,} {unit})"
    text = _REPR.repr(value)  # containers: a few items, each cut short
    return text if len(text) <= limit else f"{text[:limit]}…"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = QUOTE_CHARS


class ReconcilerError(Exception):
    """Base of every error the tool raises on purpose."""


class TransientError(ReconcilerError):
    """Trying again later may succeed: a busy database, a timeout, an HTTP 503 or 429.

    A caller that can wait (the controller) retries with back-off, and waits at least ``retry_after``
    seconds when the source said how long (HTTP ``Retry-After``); None leaves the delay to the caller.
    Callers decide by this type, never by the message.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ReconcilerError):
    """Trying again fails the same way until a person changes something: refused, does not exist, damaged."""


@dataclass
class ManifestError(ReconcilerError):
    """A manifest (or a set of manifests) is invalid; carries every finding, not only the first."""

    findings: list[Finding] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(f.render() for f in self.findings)


class CodecError(ReconcilerError):
    """Task sequence XML could not be read or written; the message names the element."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


class UnresolvedReference(ReconcilerError):
    """A reference by console name could not be resolved to a ConfigMgr ID."""
