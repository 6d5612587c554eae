"""The request log of ``reconcile site serve``: what tests and benchmarks count.

One entry per HTTP request answered (each leg of a handshake too): method, path, query, status, duration (from
the request read to its answer ready; the entry is made before the answer is sent, so a client holding its
answer finds its request logged), the user once authenticated, and for a refusal the reason. It never holds
a header, a body, a token or a password. Kept in memory for in-process use and, when a file is named, appended
to it as JSON lines.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class RequestEntry:
    time: float
    method: str
    path: str
    query: str
    status: int
    duration_ms: float
    user: str = ""
    reason: str = ""

    @property
    def authenticated(self) -> bool:
        return self.status != 401


class RequestLog:
    """Thread-safe, append-only; ``entries()`` is a copy, ``clear()`` starts a new count."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: list[RequestEntry] = []
        self._file: IO[str] | None = path.open("a", encoding="utf-8") if path is not None else None

    def add(self, method: str, path: str, query: str, status: int, started: float, user: str = "",
            reason: str = "") -> RequestEntry:
        entry = RequestEntry(time.time(), method, path, query, status,
                             round((time.monotonic() - started) * 1000, 3), user, reason)
        with self._lock:
            self._entries.append(entry)
            if self._file is not None:
                self._file.write(json.dumps(asdict(entry)) + "\n")
                self._file.flush()
        return entry

    def entries(self) -> list[RequestEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def count(self, method: str | None = None, path_prefix: str = "", status: int | None = None) -> int:
        """How many requests matched (e.g. ``count("GET", "/AdminService/wmi/SMS_TaskSequencePackage(")``)."""
        return sum(1 for e in self.entries() if (method is None or e.method == method)
                   and e.path.startswith(path_prefix) and (status is None or e.status == status))

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
