"""Where the full trace of an internal error goes, so that a person sees one line and a bug report has it all.

An error the tool raises on purpose (:class:`~reconciler.errors.ReconcilerError`) is a message for the
person at the terminal. Anything else is a bug: the terminal gets one line naming the exception and a
file, and the file gets the traceback. The file is written under ``.reconcile/logs/`` when the current
folder has a ``.reconcile`` folder (the run's workspace, where the site and state live by default),
else in the system's temporary folder; it is readable by its owner only. It holds the traceback, the
tool's and Python's versions and the time, never the command line (a ``--repo`` URL may carry a token).
"""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path

#: The workspace folder whose ``logs/`` holds traces when it exists in the current folder.
WORKSPACE = Path(".reconcile")
#: How much of an internal error's message the one line quotes.
MESSAGE_CHARS = 200


def trace_folder() -> Path:
    """``.reconcile/logs`` when the current folder has a ``.reconcile`` folder, else the system temp folder."""
    if WORKSPACE.is_dir():
        return WORKSPACE / "logs"
    return Path(tempfile.gettempdir())


def _version() -> str:
    try:
        return metadata.version("configmgr-ts-reconciler")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_trace(exc: BaseException) -> Path:
    """Write the traceback of ``exc`` to a new file (mode 0600) and return its path.

    The temporary folder is used when ``.reconcile/logs`` cannot be written; an OSError from there too
    reaches the caller.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = (f"reconcile {_version()} (Python {platform.python_version()}, {sys.platform}), "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, pid {os.getpid()}\n\n"
            + "".join(traceback.format_exception(exc)))
    folders = [trace_folder()]
    if folders[0] != Path(tempfile.gettempdir()):
        folders.append(Path(tempfile.gettempdir()))
    for i, folder in enumerate(folders):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f"reconcile-trace-{stamp}-", suffix=".txt", dir=folder)
        except OSError:
            if i == len(folders) - 1:
                raise
            continue
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        return Path(name).absolute()
    raise AssertionError("unreachable")  # pragma: no cover


def internal_error_line(exc: BaseException) -> str:
    """``error: internal error (KeyError): 'x'; the full trace is in PATH``: what the terminal gets for a bug.

    Only when no file can be written does the traceback follow the line.
    """
    message = re.sub(r"\s+", " ", str(exc)).strip()
    if len(message) > MESSAGE_CHARS:
        message = f"{message[:MESSAGE_CHARS]}… ({len(message):,} characters)"
    said = f": {message}" if message else ""
    try:
        return f"error: internal error ({type(exc).__name__}){said}; the full trace is in {write_trace(exc)}"
    except OSError as failed:  # nowhere to write it: the trace follows the line rather than being lost
        return (f"error: internal error ({type(exc).__name__}){said}; the trace could not be written to a file "
                f"({failed.strerror or failed}), so here it is:\n" + "".join(traceback.format_exception(exc)).rstrip())
