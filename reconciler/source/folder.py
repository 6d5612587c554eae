"""The manifest files of a folder: which are read, and what stays in the box.

Manifests may come from a pull request whose author is not the person who applies them, so what is read
stays in its box (the rules are the same for a Git tree, see :mod:`reconciler.source.git`):

- A symlink is followed when its target resolves inside the manifests root; a symlink that leaves the
  root, dangles or loops is an error. A symlink to a file the tool never reads (not ``*.yaml`` /
  ``*.yml``) is left alone wherever it points.
- Only regular files are read (never a device or a FIFO), and never more than ``max_file_bytes``.
- A file or folder that cannot be read is an :class:`UnreadableManifest`, which loading turns into an
  error finding, so no plan (and no prune) is made without it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.config import CONFIG_FILE, DEFAULT_MAX_MANIFEST_BYTES
from reconciler.errors import ReconcilerError

MANIFEST_SUFFIXES = (".yaml", ".yml")


class UnreadableManifest(ReconcilerError):
    """A manifest file or folder that is not read: too large, not a regular file, a symlink leaving the root.

    Loading turns it into an error finding naming the file, so nothing is planned without the file.
    """

    def __init__(self, message: str, rule: str = "io") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


def too_large(size: int, limit: int, *, at_least: bool = False) -> UnreadableManifest:
    more = "more than " if at_least else ""
    return UnreadableManifest(f"is {more}{size:,} bytes; a manifest file may be at most {limit:,} bytes "
                              f"(limits.maxManifestBytes in {CONFIG_FILE}); split it into several files", "size")


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A manifest file of a folder: what findings call it, the real path to read, or why it is not read."""

    display: str
    real: str | None
    problem: UnreadableManifest | None = None
    #: sorts like a top-down walk: a folder's files, then its subfolders, each by name
    order: tuple[tuple[int, str], ...] = ()


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _FolderScan:
    """The walk behind :func:`scan_folder`: real folders first, then the symlinks found in them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = os.path.realpath(root)
        self.found: list[FoundFile] = []
        self.files: set[str] = set()  # real paths of the files found
        self.walked: list[str] = []  # real folders read (their dot folders excepted)
        self.links: list[tuple[str, str, tuple[tuple[int, str], ...], str]] = []

    def problem(self, display: str, order: tuple[tuple[int, str], ...], message: str, rule: str) -> None:
        self.found.append(FoundFile(display, None, UnreadableManifest(message, rule), order))

    def walk(self, folder: str, display: str, order: tuple[tuple[int, str], ...]) -> None:
        """Read ``folder`` (a real path) and its real subfolders; symlinks are queued for :meth:`follow`."""
        self.walked.append(folder)
        pending = [(folder, display, order)]
        while pending:
            here, shown, key = pending.pop()
            try:
                with os.scandir(here) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                self.problem(shown, (*key, (0, "")), f"folder cannot be read: {exc.strerror or exc}; the "
                             "manifests in it would be missing from the plan (and pruned)", "io")
                continue
            subfolders = []
            for entry in entries:
                name = entry.name
                if name.startswith(".") or (here == self.base and name == CONFIG_FILE):
                    continue  # .git, .reconcile; reconcile.yaml holds settings, not manifests
                child = os.path.join(shown, name)
                if entry.is_symlink():
                    self.links.append((entry.path, child, (*key, (0, name)), here))
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append((entry.path, child, (*key, (1, name))))
                elif name.endswith(MANIFEST_SUFFIXES):
                    mode = entry.stat(follow_symlinks=False).st_mode
                    if stat.S_ISREG(mode):
                        self.files.add(entry.path)
                        self.found.append(FoundFile(child, entry.path, None, (*key, (0, name))))
                    else:
                        self.problem(child, (*key, (0, name)), f"is {_file_kind(mode)}; a manifest is a regular "
                                     "file", "io")
            pending.extend(reversed(subfolders))

    def read(self, folder: str) -> bool:
        """Whether a walk reads ``folder`` already (it is not below a dot folder of a walked folder)."""
        for walked in self.walked:
            if _inside(folder, walked):
                rest = os.path.relpath(folder, walked)
                if rest == "." or not any(part.startswith(".") for part in rest.split(os.sep)):
                    return True
        return False

    def follow(self) -> None:
        while self.links:
            path, display, order, parent = self.links.pop(0)
            allowed = f"a symlink must point to a file or folder inside the manifests folder {self.base}"
            literal = "?"
            try:
                literal = os.readlink(path)
                target = os.path.realpath(path, strict=True)
                mode = os.stat(target).st_mode
            except OSError as exc:
                what = ("loops (a symlink that points back to itself)" if exc.errno == errno.ELOOP else
                        "dangles (its target does not exist)" if isinstance(exc, FileNotFoundError) else
                        f"cannot be followed ({exc.strerror or exc})")
                self.problem(display, order, f"is a symlink to {literal!r} that {what}; {allowed}", "symlink")
                continue
            if stat.S_ISREG(mode) and not display.endswith(MANIFEST_SUFFIXES):
                continue  # a file this tool never reads, wherever it is
            if not _inside(target, self.base):
                resolved = f" ({target})" if target != literal else ""
                self.problem(display, order, f"is a symlink to {literal!r}{resolved}, outside the manifests folder; "
                             f"{allowed}", "symlink")
            elif stat.S_ISDIR(mode):
                if _inside(parent, target):
                    self.problem(display, order, f"is a symlink to {literal!r}, a folder that contains it (a "
                                 f"loop); {allowed} that does not contain the symlink", "symlink")
                elif not self.read(target):
                    self.walk(target, display, (*order[:-1], (1, order[-1][1])))
            elif not stat.S_ISREG(mode):
                self.problem(display, order, f"is a symlink to {literal!r}, which is {_file_kind(mode)}; a "
                             "manifest is a regular file", "io")
            elif target not in self.files:
                self.files.add(target)
                self.found.append(FoundFile(display, target, None, order))


def _checkout_left(root: Path) -> str | None:
    """The Git working tree around ``root`` when ``root`` resolves outside it, else None.

    The manifests folder named on the command line is the user's choice, but in a checkout of a pull
    request the pull request decides whether ``manifests`` (or ``manifests/x.yaml``) is a symlink to ``/``.
    """
    here = Path(os.path.abspath(root))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return None if _inside(os.path.realpath(root), os.path.realpath(folder)) else str(folder)
    return None


def scan_folder(root: Path) -> list[FoundFile]:
    """Every manifest file under ``root`` (or ``root`` itself when it is a file), in a stable order.

    Dot folders (.git, .reconcile) and ``reconcile.yaml`` at the root are skipped. A file reached both
    directly and through symlinks is read once, under the first name found (real paths before links).
    """
    checkout = _checkout_left(root)
    if checkout is not None:
        return [FoundFile(str(root), None, UnreadableManifest(
            f"resolves to {os.path.realpath(root)}, outside the Git working tree {checkout} that holds it; the "
            "manifests of a repository are read from inside it (name the folder itself)", "symlink"))]
    try:
        is_folder = stat.S_ISDIR(os.stat(root).st_mode)
    except OSError:
        is_folder = False
    if not is_folder:  # one file named on the command line: read where it is, as the user named it
        return [FoundFile(str(root), os.path.realpath(root), None)]
    scan = _FolderScan(root)
    scan.walk(scan.base, str(root), ())
    scan.follow()
    return sorted(scan.found, key=lambda f: f.order)


def iter_manifest_files(root: Path) -> Iterator[Path]:
    """Every readable *.yaml / *.yml under root, in a stable order (see :func:`scan_folder`)."""
    for found in scan_folder(root):
        if found.real is not None:
            yield Path(found.display)


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def read_manifest_file(path: str, limit: int = DEFAULT_MAX_MANIFEST_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is refused before it is read.

    ``path`` is a resolved path: O_NOFOLLOW refuses a symlink swapped in since it was checked, and
    O_NONBLOCK keeps opening a FIFO from waiting for a writer. At most ``limit + 1`` bytes are read, so a
    file that grows after its size was checked is still refused.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableManifest(f"is {_file_kind(info.st_mode)}; a manifest is a regular file")
        if info.st_size > limit:
            raise too_large(info.st_size, limit)
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise too_large(limit, limit, at_least=True)
    return data
