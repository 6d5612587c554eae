"""The ``reconcile`` command line: parse options, call the library, render, pick an exit code.

Each module holds the commands of one concern; importing them here registers them on the group.
"""

from __future__ import annotations

from reconciler.cli import (  # noqa: F401 - registers the commands
    audit,
    completion,
    console,
    controller,
    manifests,
    pause,
    prestage,
    rollback,
    run,
    serve,
    site,
)
from reconciler.cli.app import cli, main
from reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_INTERNAL, EXIT_OK

__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_INTERNAL", "EXIT_OK", "cli", "main"]
