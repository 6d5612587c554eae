"""The parse cache: parsed and validated files by Git blob ID, so unchanged files are never parsed twice."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

from reconciler.source.loader import FileResult
from reconciler.storage import connect

try:
    from importlib.metadata import version as _version

    TOOL_VERSION = _version("configmgr-ts-reconciler")
except Exception:  # pragma: no cover - running from a source tree without metadata
    TOOL_VERSION = "0"

#: Bumped when what the cache stores changes shape, beside the tool version.
CACHE_FORMAT = "1"


class ParseCache:
    """Parsed files by Git blob ID, in SQLite: safe for concurrent runs, invalidated by tool version."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS files (blob TEXT NOT NULL, version TEXT NOT NULL, "
                        "data BLOB NOT NULL, used REAL NOT NULL, PRIMARY KEY (blob, version))")
        self.version = f"{TOOL_VERSION}/{CACHE_FORMAT}"

    def get(self, key: str) -> FileResult | None:
        row = self.db.execute("SELECT data FROM files WHERE blob = ? AND version = ?", (key, self.version)).fetchone()
        if row is None:
            return None
        try:
            return pickle.loads(row[0])
        except Exception:
            return None

    def put(self, key: str, result: FileResult) -> None:
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", (key, self.version, data, time.time()))

    def close(self) -> None:
        self.db.close()
