"""The manifest files of a Git tree, with every symlink resolved the way a checkout would resolve it.

The rules of a manifests folder (:mod:`reconciler.source.folder`) hold for a tree too: a symlink (a tree
entry of mode 120000 whose blob is the target path) is followed when it resolves, component by
component, inside the manifests path of the same tree, and is an error otherwise (absolute, leaving
the repository or the manifests path, dangling, looping, a folder that contains it, a submodule). Files
in dot folders and ``reconcile.yaml`` at the manifests path are skipped. The whole listing comes from
one ``git ls-tree`` (:meth:`~reconciler.source.git.GitRepository.entries`); only symlink targets are read
here, never a manifest's blob.
"""

from __future__ import annotations

import bisect
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.config import CONFIG_FILE
from reconciler.errors import shorten
from reconciler.source.folder import MANIFEST_SUFFIXES

if TYPE_CHECKING:
    from reconciler.source.git import GitRepository, Revision


#: Symlinks followed in a row before a chain counts as a loop (Linux's own limit).
MAX_SYMLINK_HOPS = 40

#: The longest symlink target read: a path. A longer "target" is no symlink a checkout could make.
MAX_SYMLINK_TARGET = 4096

_SYMLINK_MODE = "120000"

#: (mode, type, object ID, size) of a tree entry; the size of a tree is -1
Entry = tuple[str, str, str, int]


@dataclass(frozen=True, slots=True)
class TreeFile:
    """A manifest file of a tree: the path findings show, the blob to read and its size, or why it is not read."""

    path: str
    sha: str = ""
    size: int = 0
    problem: str = ""
    rule: str = ""


class _LinkProblem(Exception):
    """A symlink that is not followed, and why (it becomes the problem of its TreeFile)."""

    def __init__(self, message: str, rule: str = "symlink") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


def _under(path: str, folder: str) -> bool:
    return not folder or path == folder or path.startswith(folder + "/")


def _dotted(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/") if part)


class TreeScan:
    """The files of one tree under a scope, with every symlink resolved the way a checkout would."""

    def __init__(self, repo: GitRepository, revision: Revision, scope: str, max_file_bytes: int) -> None:
        self.repo = repo
        self.revision = revision
        self.scope = scope
        self.max_file_bytes = max_file_bytes
        self.entries = repo.entries(revision, scope)
        self.paths = sorted(self.entries)  # for the entries under one folder, by bisection
        self._all: dict[str, Entry] | None = None  # the whole tree, listed once if a symlink leaves the scope
        self.found: dict[str, TreeFile] = {}  # by display path
        self.blobs: set[str] = set()  # paths of the files found
        self.walked: list[str] = []
        self.links: list[tuple[str, str]] = []  # (display path, path of the symlink in the tree)

    def files(self) -> list[TreeFile]:
        scope = self.scope
        top = self.entries.get(scope) if scope else None
        if scope and top is None:
            raise self.repo.missing(self.revision, scope)
        if top is not None and top[1] != "tree":  # the path names one file
            if top[0] == _SYMLINK_MODE:
                self.add(TreeFile(scope, problem="is a symlink; name the file or folder it points to", rule="symlink"))
            else:
                self.add(TreeFile(scope, top[2], top[3]))
            return list(self.found.values())
        self.walk(scope, scope)
        while self.links:
            self.follow(*self.links.pop(0))
        return sorted(self.found.values(), key=lambda f: f.path)

    def add(self, file: TreeFile) -> None:
        self.found.setdefault(file.path, file)

    def walk(self, folder: str, display: str) -> None:
        """Every file under ``folder`` (a real tree path inside the scope), shown under ``display``."""
        self.walked.append(folder)
        prefix = f"{folder}/" if folder else ""
        start = bisect.bisect_left(self.paths, prefix)
        for file_path in self.paths[start:bisect.bisect_left(self.paths, prefix + "\U0010ffff", start)]:
            mode, kind, sha, size = self.entries[file_path]
            rest = file_path[len(prefix):]
            if not rest or _dotted(rest) or kind != "blob":
                continue
            shown = f"{display}/{rest}" if display else rest
            if folder == self.scope and rest == CONFIG_FILE:
                continue  # the settings file (reconciler.config), read from the local disk only
            if mode == _SYMLINK_MODE:
                self.links.append((shown, file_path))
            elif rest.endswith(MANIFEST_SUFFIXES) and file_path not in self.blobs:
                self.blobs.add(file_path)
                self.add(TreeFile(shown, sha, size))

    def entry(self, file_path: str) -> Entry | None:
        if not file_path:
            return ("040000", "tree", "", -1)  # the root of the repository
        found = self.entries.get(file_path)
        if found is None and not _under(file_path, self.scope):
            if self._all is None:
                self._all = self.repo.entries(self.revision, "")
            found = self._all.get(file_path)
        return found

    def target(self, link: str, entry: Entry) -> str:
        if entry[3] > MAX_SYMLINK_TARGET:
            raise _LinkProblem(f"is a symlink whose target is {entry[3]:,} bytes long; a path is at most "
                               f"{MAX_SYMLINK_TARGET:,}")
        raw = self.repo.read_blob(entry[2], f"{self.revision.ref}:{link}", "the target of this symlink")
        return raw.decode("utf-8", "replace")

    def resolve(self, link: str) -> tuple[str, str, Entry]:
        """(literal target, resolved path, its entry) of a symlink, resolved component by component."""
        literal = self.target(link, self.entries[link])
        allowed = self.allowed
        if literal.startswith("/"):
            raise _LinkProblem(f"is a symlink to {shorten(literal)}, an absolute path outside the repository; "
                               f"{allowed}")
        pending = literal.split("/")
        resolved = link.split("/")[:-1]
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    raise _LinkProblem(f"is a symlink to {shorten(literal)}, outside the repository; {allowed}")
                resolved.pop()
                continue
            resolved.append(part)
            current = "/".join(resolved)
            found = self.entry(current)
            if found is None:
                raise _LinkProblem(f"is a symlink to {shorten(literal)} that dangles ({current} does not exist in "
                                   f"{self.revision.ref}); {allowed}")
            if found[1] != "tree" and found[0] != _SYMLINK_MODE and any(p not in ("", ".") for p in pending):
                raise _LinkProblem(f"is a symlink to {shorten(literal)} that dangles ({current} is a file, not a "
                                   f"folder); {allowed}")
            if found[0] == _SYMLINK_MODE:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise _LinkProblem(f"is a symlink to {shorten(literal)} that loops (a symlink that points back "
                                       f"to itself); {allowed}")
                inner = self.target(current, found)
                if inner.startswith("/"):
                    raise _LinkProblem(f"is a symlink to {shorten(literal)}, which leads to the absolute path "
                                       f"{shorten(inner)}, outside the repository; {allowed}")
                resolved.pop()
                pending = inner.split("/") + pending
        final = "/".join(resolved)
        return literal, final, self.entry(final)  # type: ignore[return-value]

    @property
    def allowed(self) -> str:
        where = f"the manifests folder {self.scope}" if self.scope else "the repository"
        return f"a symlink must point to a file or folder inside {where}"

    def follow(self, display: str, link: str) -> None:
        allowed = self.allowed
        try:
            literal, target, (_, kind, sha, size) = self.resolve(link)
        except _LinkProblem as problem:
            self.add(TreeFile(display, problem=problem.message, rule=problem.rule))
            return
        if kind == "blob" and not display.endswith(MANIFEST_SUFFIXES):
            return  # a file this tool never reads, wherever it points
        if not _under(target, self.scope):
            resolved = f" ({target})" if target != literal else ""
            self.add(TreeFile(display, problem=f"is a symlink to {shorten(literal)}{resolved}, outside the manifests "
                              f"folder; {allowed}", rule="symlink"))
        elif kind == "tree":
            if _under(posixpath.dirname(link), target):
                self.add(TreeFile(display, problem=f"is a symlink to {shorten(literal)}, a folder that contains it "
                                  f"(a loop); {allowed} that does not contain the symlink", rule="symlink"))
            elif not any(_under(target, w) and not _dotted(target[len(w):]) for w in self.walked):
                self.walk(target, display)
        elif kind != "blob":
            self.add(TreeFile(display, problem=f"is a symlink to {shorten(literal)}, which is a submodule; a "
                              "manifest is a file", rule="io"))
        elif target not in self.blobs:
            self.blobs.add(target)
            self.add(TreeFile(display, sha, size))
