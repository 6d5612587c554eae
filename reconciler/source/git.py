"""Manifests straight from a Git tree at any ref: no checkout, the user's working copy untouched.

A local repository is read in place; a remote URL is cloned once (bare) into a cache folder and
fetched on later runs. Files are read from the commit's tree, and each file's Git blob ID keys the
parse cache, so a file that did not change between two commits is never parsed twice.

A pull request is planned from the result of merging it, computed in the object database
(``git merge-tree --write-tree``): no working tree, index or ref is touched. The merge writes its
new trees and merged blobs into the repository's object store, unreachable until ``git gc`` drops them.

The rules of a manifests folder hold for a tree too: which files of a tree are read, and how its
symlinks resolve, is :mod:`reconciler.source.gittree`; a blob larger than the limit is never read. An
object that cannot be read (a damaged clone) is a :class:`DamagedObjectError` naming the ref and the object.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import git
from gitdb.exc import ODBError

from reconciler.config import DEFAULT_MAX_MANIFEST_BYTES
from reconciler.errors import ReconcilerError, shorten
from reconciler.source.cache import ParseCache
from reconciler.source.folder import MANIFEST_SUFFIXES, UnreadableManifest, too_large
from reconciler.source.gittree import MAX_SYMLINK_HOPS, MAX_SYMLINK_TARGET, Entry, TreeFile, TreeScan
from reconciler.source.loader import DesiredState, load_texts
from reconciler.source.yamlfile import decode


class GitSourceError(ReconcilerError):
    """A repository or ref cannot be read; the message names it and says what exists."""


class MergeConflictError(GitSourceError):
    """Merging the pull request conflicts in manifests: there is no merge result to plan."""


class DamagedObjectError(GitSourceError):
    """A commit, tree or blob of the repository cannot be read: the clone is damaged, not the manifests."""


_OBJECT_ID = re.compile(r"\b(?:[0-9a-f]{64}|[0-9a-f]{40})\b")


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

    def entries(self, revision: Revision, scope: str) -> dict[str, Entry]:
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
        return TreeScan(self, revision, _scope(path), max_file_bytes).files()

    def manifest_files(self, revision: Revision, path: str = "") -> list[tuple[str, str]]:
        """(path, blob ID) of every manifest file under ``path`` that is read, in path order."""
        return [(f.path, f.sha) for f in self.tree_files(revision, path) if not f.problem]

    def missing(self, revision: Revision, path: str) -> GitSourceError:
        """The error for a path that the revision's tree does not have."""
        return GitSourceError(f"{revision.ref}:{path} does not exist in {self.location}")

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


def default_cache_dir() -> Path:
    return Path(os.environ.get("RECONCILE_CACHE_DIR", ".reconcile"))


__all__ = ["MAX_SYMLINK_HOPS", "MAX_SYMLINK_TARGET", "MERGE_TREE_GIT", "DamagedObjectError", "GitRepository",
           "GitSourceError", "Merge", "MergeConflictError", "ParseCache", "Revision", "TreeFile", "default_cache_dir",
           "load_merge", "load_revision", "manifest_conflicts"]
