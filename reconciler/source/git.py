"""Manifests straight from a Git tree at any ref: no checkout, the user's working copy untouched.

A local repository is read in place; a remote URL is cloned once (bare) into a cache folder and
fetched on later runs. Files are read from the commit's tree, and each file's Git blob ID keys the
parse cache, so a file that did not change between two commits is never parsed twice.

A pull request is planned from the result of merging it, computed in the object database
(``git merge-tree --write-tree``): no working tree, index or ref is touched. The merge writes its
new trees and merged blobs into the repository's object store, unreachable until ``git gc`` drops them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import git

from reconciler.errors import ReconcilerError
from reconciler.source.cache import ParseCache
from reconciler.source.loader import MANIFEST_SUFFIXES, DesiredState, load_texts
from reconciler.source.yamlfile import decode


class GitSourceError(ReconcilerError):
    """A repository or ref cannot be read; the message names it and says what exists."""


class MergeConflictError(GitSourceError):
    """Merging the pull request conflicts in manifests: there is no merge result to plan."""


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
        try:
            if _is_url(location) or location.startswith("file://"):
                self.repo = self._mirror(location, cache_dir)
            else:
                self.repo = git.Repo(location, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise GitSourceError(f"{location} is not a Git repository") from None
        except git.GitCommandError as exc:
            raise GitSourceError(f"cannot clone or fetch {location}: {exc.stderr.strip() or exc}") from None

    @staticmethod
    def _mirror(url: str, cache_dir: Path) -> git.Repo:
        folder = cache_dir / "repos" / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".git")
        if folder.exists():
            repo = git.Repo(folder)
            repo.git.fetch("--prune", "origin", "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
            return repo
        folder.parent.mkdir(parents=True, exist_ok=True)
        return git.Repo.clone_from(url, folder, bare=True, mirror=True)

    def resolve(self, ref: str) -> Revision:
        try:
            commit = self.repo.commit(ref)
        except (git.BadName, ValueError, git.GitCommandError):
            heads = sorted(h.name for h in getattr(self.repo, "heads", []))[:10]
            hint = f"; branches: {', '.join(heads)}" if heads else ""
            raise GitSourceError(f"ref {ref!r} does not exist in {self.location}{hint}") from None
        return Revision(ref, commit.hexsha, self.location)

    def manifest_files(self, revision: Revision, path: str = "") -> list[tuple[str, str]]:
        """(path, blob ID) of every *.yaml / *.yml under ``path`` in the commit's tree, in path order.

        One ``git ls-tree`` lists the tree: walking it object by object costs more than the plan.
        """
        scope = _scope(path)
        listing = self.repo.git.ls_tree("-r", "-z", "--full-tree", revision.sha, "--", *([scope] if scope else []))
        out = []
        for entry in listing.split("\0"):
            if not entry:
                continue
            meta, file_path = entry.split("\t", 1)
            _, kind, sha = meta.split(" ")
            if kind == "blob" and _in_scope(file_path, scope):
                out.append((file_path, sha))
        if scope and not out and not self.repo.git.ls_tree(revision.sha, "--", scope):
            raise GitSourceError(f"{revision.ref}:{path} does not exist in {self.location}")
        return sorted(out)

    def can_merge(self) -> bool:
        return tuple(self.repo.git.version_info[:2]) >= MERGE_TREE_GIT

    def merge_base(self, base: Revision, head: Revision) -> Revision | None:
        """Where ``head`` was cut from ``base``, named by its SHA (no branch points at it)."""
        found = self.repo.merge_base(base.sha, head.sha)
        if not found:
            return None
        return Revision(found[0].hexsha[:12], found[0].hexsha, self.location)

    def merge(self, base: Revision, head: Revision) -> Merge:
        """Merge ``head`` into ``base`` in the object database, the way the pull request would merge."""
        status, out, err = self.repo.git.merge_tree("--write-tree", "--name-only", "-z", base.sha, head.sha,
                                                     with_extended_output=True, with_exceptions=False)
        if status not in (0, 1):  # 1 is a merge with conflicts; anything else is no merge at all
            raise GitSourceError(f"cannot merge {head.ref} into {base.ref}: {err.strip() or f'git exited {status}'}")
        # -z output: the tree ID, then each conflicted path, each ended by NUL; an empty entry ends the list.
        listed = out.split("\0\0", 1)[0].split("\0")
        conflicts = tuple(p for p in listed[1:] if p) if status == 1 else ()
        return Merge(base, head, listed[0], conflicts)

    def read_blob(self, sha: str) -> bytes:
        return self.repo.odb.stream(bytes.fromhex(sha)).read()

    def head_sha(self) -> str | None:
        try:
            return self.repo.head.commit.hexsha
        except (ValueError, TypeError):
            return None


def _load_files(repo: GitRepository, named: list[tuple[str, str]], cache: ParseCache | None) -> DesiredState:
    """Load (display name, blob ID) files; the display name is what findings and sources show."""
    blobs = dict(named)

    def read_text(name: str) -> str:
        return decode(repo.read_blob(blobs[name]), name)

    items = [(name, (lambda sha=sha: repo.read_blob(sha)), sha) for name, sha in named]
    try:
        return load_texts(items, read_text=read_text, cache=cache)
    finally:
        if cache is not None:
            cache.flush()


def load_revision(repo: GitRepository, revision: Revision, path: str = "", cache: ParseCache | None = None
                  ) -> DesiredState:
    """Load the manifests of one commit; findings name ``ref:path:line``."""
    return _load_files(repo, [(f"{revision.ref}:{p}", sha) for p, sha in repo.manifest_files(revision, path)],
                       cache)


def _listing(repo: GitRepository, revision: Revision, path: str) -> set[tuple[str, str]]:
    try:
        return set(repo.manifest_files(revision, path))
    except GitSourceError:  # the folder exists on one side of the merge only
        return set()


def load_merge(repo: GitRepository, merge: Merge, path: str = "", cache: ParseCache | None = None
               ) -> DesiredState:
    """Load the manifests of a merge result.

    No commit holds the merge result, so each file is named after a ref that has the same blob at the
    same path, where a person can open it and find the same lines: the head's when the pull request
    brought it, the base's when only the base has it. A file merged from both sides (the only kind with
    lines of its own) is named ``base+head:path``.
    """
    scope_files = repo.manifest_files(merge.revision, path)
    head, base = _listing(repo, merge.head, path), _listing(repo, merge.base, path)

    def name(file_path: str, sha: str) -> str:
        if (file_path, sha) in head:
            return f"{merge.head.ref}:{file_path}"
        if (file_path, sha) in base:
            return f"{merge.base.ref}:{file_path}"
        return f"{merge.revision.ref}:{file_path}"

    return _load_files(repo, [(name(p, sha), sha) for p, sha in scope_files], cache)


def manifest_conflicts(merge: Merge, path: str = "") -> tuple[list[str], list[str]]:
    """The merge's conflicted files split into (manifests under ``path``, everything else)."""
    scope = _scope(path)
    mine = [p for p in merge.conflicts if _in_scope(p, scope)]
    return mine, [p for p in merge.conflicts if p not in mine]


def default_cache_dir() -> Path:
    return Path(os.environ.get("RECONCILE_CACHE_DIR", ".reconcile"))
