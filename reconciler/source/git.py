"""Manifests straight from a Git tree at any ref: no checkout, the user's working copy untouched.

A local repository is read in place; a remote URL is cloned once (bare) into a cache folder and
fetched on later runs. Files are read from the commit's tree, and each file's Git blob ID keys the
parse cache, so a file that did not change between two commits is never parsed twice.

A pull request is planned from the result of merging it, computed in the object database
(``git merge-tree --write-tree``): no working tree, index or ref is touched. The merge writes its
new trees and merged blobs into the repository's object store, unreachable until ``git gc`` drops them.

The rules of a manifests folder hold for a tree too (:mod:`reconciler.source.loader`): a symlink (a tree
entry of mode 120000 whose blob is the target path) is followed when it resolves inside the manifests
path of the same tree, and is an error otherwise; a blob larger than the limit is never read. An object
that cannot be read (a damaged clone) is a :class:`DamagedObjectError` naming the ref and the object.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import git
from gitdb.exc import ODBError

from reconciler.config import CONFIG_FILE, DEFAULT_MAX_MANIFEST_BYTES
from reconciler.errors import ReconcilerError, shorten
from reconciler.source.cache import ParseCache
from reconciler.source.loader import MANIFEST_SUFFIXES, DesiredState, UnreadableManifest, load_texts, too_large
from reconciler.source.yamlfile import decode


class GitSourceError(ReconcilerError):
    """A repository or ref cannot be read; the message names it and says what exists."""


class MergeConflictError(GitSourceError):
    """Merging the pull request conflicts in manifests: there is no merge result to plan."""


class DamagedObjectError(GitSourceError):
    """A commit, tree or blob of the repository cannot be read: the clone is damaged, not the manifests."""


#: Symlinks followed in a row before a chain counts as a loop (Linux's own limit).
MAX_SYMLINK_HOPS = 40

#: The longest symlink target read: a path. A longer "target" is no symlink a checkout could make.
MAX_SYMLINK_TARGET = 4096

_SYMLINK_MODE = "120000"
_OBJECT_ID = re.compile(r"\b(?:[0-9a-f]{64}|[0-9a-f]{40})\b")

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
    def __init__(self, message: str, rule: str = "symlink") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


#: ``git merge-tree --write-tree`` (a merge without a working tree) arrived in Git 2.38.
MERGE_TREE_GIT = (2, 38)


@dataclass(frozen=True, slots=True)
class Revision:
    ref: str
    sha: str
    repo: str

    @property
    def short(self) -> str:
        return self.sha[:12]


@dataclass(frozen=True, slots=True)
class Merge:
    """The tree that merging ``head`` into ``base`` produces, and the files it could not merge."""

    base: Revision
    head: Revision
    tree: str
    conflicts: tuple[str, ...] = ()

    @property
    def revision(self) -> Revision:
        """The merge result read like a ref: ``git ls-tree`` takes a tree ID where it takes a commit."""
        return Revision(f"{self.base.ref}+{self.head.ref}", self.tree, self.base.repo)


def _in_scope(file_path: str, scope: str) -> bool:
    """A manifest under ``scope``: *.yaml / *.yml, not inside a dot folder such as .github."""
    if scope and not (file_path == scope or file_path.startswith(scope + "/")):
        return False
    if not file_path.endswith(MANIFEST_SUFFIXES):
        return False
    return not any(part.startswith(".") for part in Path(file_path).parts)


def _scope(path: str) -> str:
    return path.strip("/") if path and path not in (".", "/") else ""


def _is_url(location: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", location)) or bool(re.match(r"^[^/\\s]+@[^/\\s]+:", location))


def _under(path: str, folder: str) -> bool:
    return not folder or path == folder or path.startswith(folder + "/")


def _dotted(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/") if part)


class GitRepository:
    """A repository to read manifests from, local or cloned into ``cache_dir``."""

    def __init__(self, location: str, cache_dir: Path) -> None:
        self.location = location
        #: the cached clone of a URL (None for a local repository): deleting it is how a damaged one is fixed
        self.mirror: Path | None = None
        try:
            if _is_url(location) or location.startswith("file://"):
                self.mirror = cache_dir / "repos" / (hashlib.sha256(location.encode()).hexdigest()[:16] + ".git")
                self.repo = self._mirror(location, self.mirror)
            else:
                self.repo = git.Repo(location, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise GitSourceError(f"{location} is not a Git repository") from None
        except git.GitCommandError as exc:
            fix = (f"; if the cached clone {self.mirror} is damaged, delete it and it is cloned again"
                   if self.mirror is not None and self.mirror.exists() else "")
            raise GitSourceError(f"cannot clone or fetch {location}: {_last_line(exc)}{fix}") from None

    @staticmethod
    def _mirror(url: str, folder: Path) -> git.Repo:
        if folder.exists():
            repo = git.Repo(folder)
            repo.git.fetch("--prune", "origin", "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
            return repo
        folder.parent.mkdir(parents=True, exist_ok=True)
        return git.Repo.clone_from(url, folder, bare=True, mirror=True)

    def damaged(self, ref: str, detail: str, sha: str | None = None, what: str = "") -> DamagedObjectError:
        """The error for an object Git cannot read: which ref, which object, and how to repair the clone."""
        found = sha or next(iter(_OBJECT_ID.findall(detail)), None)
        name = what or "an object"
        name += f" (object {found})" if found else ""
        fix = f"run `git fsck` in {self.location} to find what is damaged and restore it from another clone"
        if self.mirror is not None:
            fix = (f"{self.location} is read from the cached clone {self.mirror}: delete that folder and it is "
                   "cloned again on the next run")
        return DamagedObjectError(f"{ref}: {name} cannot be read from {self.location}"
                                  f"{f' ({detail})' if detail else ''}; the repository is damaged; {fix}")

    def resolve(self, ref: str) -> Revision:
        try:
            commit = self.repo.commit(ref)
            sha = commit.hexsha
        except (git.BadName, ValueError, TypeError, ODBError, git.GitCommandError):
            named = self._named_object(ref)
            if named is not None:
                status, _, err = self.repo.git.cat_file("commit", named, with_extended_output=True,
                                                        with_exceptions=False)
                if status != 0:
                    raise self.damaged(ref, _last_line(err), named, "the commit") from None
            heads = sorted(h.name for h in getattr(self.repo, "heads", []))[:10]
            hint = f"; branches: {', '.join(heads)}" if heads else ""
            raise GitSourceError(f"ref {shorten(ref)} does not exist in {self.location}{hint}") from None
        return Revision(ref, sha, self.location)

    def _named_object(self, ref: str) -> str | None:
        """The object ID a ref names, without reading the object (so a damaged one still has an ID)."""
        if ref.startswith("-"):
            return None
        status, out, _ = self.repo.git.rev_parse("--verify", "--quiet", ref, with_extended_output=True,
                                                 with_exceptions=False)
        return out.strip() if status == 0 and _OBJECT_ID.fullmatch(out.strip()) else None

    def _ls_tree(self, revision: Revision, *args: str) -> str:
        try:
            return self.repo.git.ls_tree(*args, env={"GIT_LITERAL_PATHSPECS": "1"})
        except git.GitCommandError as exc:
            raise self.damaged(revision.ref, _last_line(exc), what="a tree of this commit") from None

    def _entries(self, revision: Revision, scope: str) -> dict[str, Entry]:
        """Every entry under ``scope`` (trees included) by path: one ``git ls-tree`` for the whole listing.

        Walking the tree object by object costs more than the plan.
        """
        listing = self._ls_tree(revision, "-r", "-t", "-l", "-z", "--full-tree", revision.sha, "--",
                                *([scope] if scope else []))
        out: dict[str, Entry] = {}
        for line in listing.split("\0"):
            if not line:
                continue
            meta, file_path = line.split("\t", 1)
            mode, kind, sha, size = meta.split()
            out[file_path] = (mode, kind, sha, int(size) if size.isdigit() else -1)
        return out

    def tree_files(self, revision: Revision, path: str = "", max_file_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
                   ) -> list[TreeFile]:
        """Every manifest file under ``path`` in the revision's tree, in path order, symlinks resolved.

        Files in dot folders and ``reconcile.yaml`` at ``path`` are skipped. A blob reached both directly
        and through symlinks is listed once, under its own path.
        """
        return _TreeScan(self, revision, _scope(path), max_file_bytes).files()

    def manifest_files(self, revision: Revision, path: str = "") -> list[tuple[str, str]]:
        """(path, blob ID) of every manifest file under ``path`` that is read, in path order."""
        return [(f.path, f.sha) for f in self.tree_files(revision, path) if not f.problem]

    def can_merge(self) -> bool:
        return tuple(self.repo.git.version_info[:2]) >= MERGE_TREE_GIT

    def merge_base(self, base: Revision, head: Revision) -> Revision | None:
        """Where ``head`` was cut from ``base``, named by its SHA (no branch points at it)."""
        try:
            found = self.repo.merge_base(base.sha, head.sha)
        except git.GitCommandError as exc:
            if _OBJECT_ID.search(str(exc.stderr)):
                raise self.damaged(f"{base.ref}...{head.ref}", _last_line(exc),
                                   what="an object needed to find the merge base") from None
            raise GitSourceError(f"cannot find where {head.ref} was cut from {base.ref}: {_last_line(exc)}") from None
        if not found:
            return None
        return Revision(found[0].hexsha[:12], found[0].hexsha, self.location)

    def merge(self, base: Revision, head: Revision) -> Merge:
        """Merge ``head`` into ``base`` in the object database, the way the pull request would merge."""
        status, out, err = self.repo.git.merge_tree("--write-tree", "--name-only", "-z", base.sha, head.sha,
                                                     with_extended_output=True, with_exceptions=False)
        if status not in (0, 1):  # 1 is a merge with conflicts; anything else is no merge at all
            if _OBJECT_ID.search(err):
                raise self.damaged(f"{base.ref}+{head.ref}", _last_line(err), what="an object of the merge")
            raise GitSourceError(f"cannot merge {head.ref} into {base.ref}: {err.strip() or f'git exited {status}'}")
        # -z output: the tree ID, then each conflicted path, each ended by NUL; an empty entry ends the list.
        listed = out.split("\0\0", 1)[0].split("\0")
        conflicts = tuple(p for p in listed[1:] if p) if status == 1 else ()
        return Merge(base, head, listed[0], conflicts)

    def read_blob(self, sha: str, ref: str = "", what: str = "") -> bytes:
        """A blob's bytes, checked against its ID; a blob that cannot be read is a DamagedObjectError.

        The check matters: a damaged packed blob can come back from ``git cat-file --batch`` cut short
        without an error, and a manifest cut short is a valid manifest with objects missing.
        """
        detail = "its content does not match its ID"
        try:
            data = self.repo.odb.stream(bytes.fromhex(sha)).read()
            if _blob_id(data, len(sha)) == sha:
                return data
        except (ValueError, TypeError, OSError, ODBError, git.GitCommandError) as exc:
            detail = str(exc)
        self.repo.git.clear_cache()  # the batch reader is out of step after a failure
        status, _, err = self.repo.git.execute(["git", "cat-file", "blob", sha], with_extended_output=True,
                                               with_exceptions=False, stdout_as_string=False)
        if status:
            detail = _last_line(err) or detail  # Git's own words: "packed object … is corrupt"
        raise self.damaged(ref or sha, detail, sha, what)

    def head_sha(self) -> str | None:
        try:
            return self.repo.head.commit.hexsha
        except (ValueError, TypeError):
            return None


def _load_files(repo: GitRepository, named: list[tuple[str, TreeFile]], cache: ParseCache | None,
                max_file_bytes: int) -> DesiredState:
    """Load (display name, tree file) files; the display name is what findings and sources show."""
    blobs = {name: file.sha for name, file in named if not file.problem}

    def read_text(name: str) -> str:
        return decode(repo.read_blob(blobs[name], name, "the blob of this file"), name)

    def reader(name: str, file: TreeFile) -> Callable[[int], bytes]:
        def read(limit: int) -> bytes:
            if file.problem:
                raise UnreadableManifest(file.problem, file.rule)
            if file.size > limit:  # the listing gave the size: the blob is never read
                raise too_large(file.size, limit)
            return repo.read_blob(file.sha, name, "the blob of this file")
        return read

    items = [(name, reader(name, file), file.sha if not file.problem and file.size <= max_file_bytes else None)
             for name, file in named]
    try:
        return load_texts(items, read_text=read_text, cache=cache, max_file_bytes=max_file_bytes)
    finally:
        if cache is not None:
            cache.flush()


def load_revision(repo: GitRepository, revision: Revision, path: str = "", cache: ParseCache | None = None, *,
                  max_file_bytes: int = DEFAULT_MAX_MANIFEST_BYTES) -> DesiredState:
    """Load the manifests of one commit; findings name ``ref:path:line``."""
    files = repo.tree_files(revision, path, max_file_bytes)
    return _load_files(repo, [(f"{revision.ref}:{f.path}", f) for f in files], cache, max_file_bytes)


def _listing(repo: GitRepository, revision: Revision, path: str) -> set[tuple[str, str]]:
    try:
        return {(f.path, f.sha) for f in repo.tree_files(revision, path) if not f.problem}
    except DamagedObjectError:
        raise
    except GitSourceError:  # the folder exists on one side of the merge only
        return set()


def load_merge(repo: GitRepository, merge: Merge, path: str = "", cache: ParseCache | None = None, *,
               max_file_bytes: int = DEFAULT_MAX_MANIFEST_BYTES) -> DesiredState:
    """Load the manifests of a merge result.

    No commit holds the merge result, so each file is named after a ref that has the same blob at the
    same path, where a person can open it and find the same lines: the head's when the pull request
    brought it, the base's when only the base has it. A file merged from both sides (the only kind with
    lines of its own) is named ``base+head:path``.
    """
    scope_files = repo.tree_files(merge.revision, path, max_file_bytes)
    head, base = _listing(repo, merge.head, path), _listing(repo, merge.base, path)

    def name(file_path: str, sha: str) -> str:
        if (file_path, sha) in head:
            return f"{merge.head.ref}:{file_path}"
        if (file_path, sha) in base:
            return f"{merge.base.ref}:{file_path}"
        return f"{merge.revision.ref}:{file_path}"

    return _load_files(repo, [(name(f.path, f.sha), f) for f in scope_files], cache, max_file_bytes)


def manifest_conflicts(merge: Merge, path: str = "") -> tuple[list[str], list[str]]:
    """The merge's conflicted files split into (manifests under ``path``, everything else)."""
    scope = _scope(path)
    mine = [p for p in merge.conflicts if _in_scope(p, scope)]
    return mine, [p for p in merge.conflicts if p not in mine]


def _blob_id(data: bytes, length: int) -> str:
    """The ID Git gives a blob of ``data``: SHA-1, or SHA-256 in a repository of 64-character IDs."""
    digest = hashlib.sha256 if length == 64 else hashlib.sha1
    return digest(b"blob %d\0" % len(data) + data).hexdigest()


def _last_line(error: git.GitCommandError | str) -> str:
    """Git's own last word on a failure (``fatal: loose object … is corrupt``), kept short."""
    text = str(error.stderr if isinstance(error, git.GitCommandError) else error)
    lines = [line.strip().strip("'").strip() for line in text.strip().splitlines() if line.strip().strip("'")]
    return shorten(lines[-1], 200).strip("'") if lines else ""


class _TreeScan:
    """The files of one tree under a scope, with every symlink resolved the way a checkout would."""

    def __init__(self, repo: GitRepository, revision: Revision, scope: str, max_file_bytes: int) -> None:
        self.repo = repo
        self.revision = revision
        self.scope = scope
        self.max_file_bytes = max_file_bytes
        self.entries = repo._entries(revision, scope)
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
            raise GitSourceError(f"{self.revision.ref}:{scope} does not exist in {self.repo.location}")
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
                self._all = self.repo._entries(self.revision, "")
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


def default_cache_dir() -> Path:
    return Path(os.environ.get("RECONCILE_CACHE_DIR", ".reconcile"))
