from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
if not CORPUS.exists():  # CI clones the repository with shared/ beside it
    CORPUS = Path("/work/shared/corpus")


def corpus_xml_files() -> list[Path]:
    return sorted((CORPUS / "ts-xml").glob("*.xml"))


def corpus_zip_objects() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted((CORPUS / "zips").glob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("SMS_TaskSequencePackage/") and name.endswith("/object.xml"):
                    out.append((f"{path.name}:{name}", archive.read(name)))
    return out


@pytest.fixture
def reconcile_cmd() -> list[str]:
    return [sys.executable, "-m", "reconciler"]


@dataclass(frozen=True)
class CliRun:
    """What one in-process ``reconcile`` command did, shaped like ``subprocess.CompletedProcess``."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:  # what an assertion message shows: enough to see why, never a whole plan
        trace = ""
        if "the full trace is in " in self.stderr:  # exit 70: a bug; its trace is in a file, show it here
            path = Path(self.stderr.rsplit("the full trace is in ", 1)[1].split()[0])
            trace = f"\n--- {path} ---\n{path.read_text() if path.is_file() else '(missing)'}"
        return (f"CliRun(reconcile {' '.join(self.args)!s} -> {self.returncode})\n--- stdout ---\n"
                f"{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}{trace}")


#: Signals a command may take over (the controller's stop handlers); restored after every in-process run.
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_cli(*args: str, cwd: Path | str | None = None, env: Mapping[str, str | None] | None = None,
            input: str | None = None) -> CliRun:
    """Run ``reconcile ARGS`` in this process, as the console script would run it in its own.

    It goes through ``reconciler.cli.main`` (so ``--log-level`` anywhere on the line and RECONCILE_LOG_LEVEL
    configure logging to stderr, and an error reaching the top is one line), in ``cwd``, with ``env`` laid
    over this process's environment for the run (``None`` removes a variable), and with ``input`` (or
    nothing) on a standard input that, like ``stdin=DEVNULL``, is no terminal: commands that confirm refuse
    without ``--yes``, and no output is coloured. What a command changes in the process is put back after
    it: the working directory, ``sys.argv``, the root logger's handlers and level, signal handlers.
    """
    from reconciler.cli import main

    runner = CliRunner()
    argv, root = sys.argv, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    signals = {number: signal.getsignal(number) for number in _SIGNALS}
    folder = contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext()
    with folder, runner.isolation(input=input, env=env) as (out, err, _):
        root.handlers = []  # a fresh process has none, so main()'s logging.basicConfig takes effect
        sys.argv = ["reconcile", *args]
        code: int = 0
        try:
            main()
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:  # sys.exit("message"): the interpreter prints it and exits 1
                print(exc.code, file=sys.stderr)
                code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for handler in root.handlers:
                if handler not in handlers:
                    handler.close()
            root.handlers, sys.argv = handlers, argv
            root.setLevel(level)
            for number, handler in signals.items():
                signal.signal(number, handler)
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode("utf-8", "backslashreplace")
    return CliRun(list(args), code, stdout, stderr)


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.05) -> None:
    """Wait for a state, not for a time: poll ``predicate`` until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)

