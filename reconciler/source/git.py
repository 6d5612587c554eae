"""Manifests straight from a Git tree at any ref: no checkout, the user's working copy untouched.

A local repository is read in place; a remote URL is cloned once (bare) into a cache folder and
fetched on later runs. Files are read from the commit's tree, and each file's Git blob ID keys the
parse cache, so a file that did not change between two commits is never parsed twice.
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


@dataclass(frozen=True, slots=True)
class Revision:
    ref: str
    sha: str
    repo: str

    @property
    def short(self) -> str:
        return self.sha[:12]


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
        scope = path.strip("/") if path and path not in (".", "/") else ""
        listing = self.repo.git.ls_tree("-r", "-z", "--full-tree", revision.sha, "--", *([scope] if scope else []))
        out = []
        for entry in listing.split("\0"):
            if not entry:
                continue
            meta, file_path = entry.split("\t", 1)
            _, kind, sha = meta.split(" ")
            if kind != "blob" or not file_path.endswith(MANIFEST_SUFFIXES):
                continue
            if any(part.startswith(".") for part in Path(file_path).parts):
                continue
            out.append((file_path, sha))
        if scope and not out and not self.repo.git.ls_tree(revision.sha, "--", scope):
            raise GitSourceError(f"{revision.ref}:{path} does not exist in {self.location}")
        return sorted(out)

    def read_blob(self, sha: str) -> bytes:
        return self.repo.odb.stream(bytes.fromhex(sha)).read()

    def head_sha(self) -> str | None:
        try:
            return self.repo.head.commit.hexsha
        except (ValueError, TypeError):
            return None


def load_revision(repo: GitRepository, revision: Revision, path: str = "", cache: ParseCache | None = None
                  ) -> DesiredState:
    """Load the manifests of one commit; findings name ``ref:path:line``."""
    files = repo.manifest_files(revision, path)
    blobs = {f"{revision.ref}:{p}": sha for p, sha in files}

    def read_text(name: str) -> str:
        return decode(repo.read_blob(blobs[name]), name)

    items = [(f"{revision.ref}:{p}", (lambda sha=sha: repo.read_blob(sha)), sha) for p, sha in files]
    if cache is not None:
        cache.db.execute("BEGIN")
    try:
        return load_texts(items, read_text=read_text, cache=cache)
    finally:
        if cache is not None:
            cache.db.execute("COMMIT")


def default_cache_dir() -> Path:
    return Path(os.environ.get("RECONCILE_CACHE_DIR", ".reconcile"))
