"""Where the desired state comes from for a run: a folder, or a Git ref read without a checkout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import git

from reconciler.source.git import GitRepository, ParseCache, Revision, load_revision
from reconciler.source.loader import DesiredState, load


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a plan was made from, recorded with every apply."""

    ref: str | None
    sha: str | None
    source: str
    dirty: bool = False

    def to_json(self) -> dict[str, object]:
        return {"ref": self.ref, "sha": self.sha, "source": self.source, "dirty": self.dirty}


def _folder_provenance(path: Path) -> Provenance:
    try:
        repo = git.Repo(path if path.is_dir() else path.parent, search_parent_directories=True)
        sha = repo.head.commit.hexsha
        branch = None if repo.head.is_detached else repo.active_branch.name
        dirty = repo.is_dirty(untracked_files=True, path=str(path.resolve()))
        return Provenance(branch, sha, str(path), dirty)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError, TypeError):
        return Provenance(None, None, str(path))


def load_folder(path: Path) -> tuple[DesiredState, Provenance]:
    return load(path), _folder_provenance(path)


def load_ref(repo_location: str, ref: str, path: str, cache_dir: Path) -> tuple[DesiredState, Provenance, Revision]:
    repo = GitRepository(repo_location, cache_dir)
    revision = repo.resolve(ref)
    cache = ParseCache(cache_dir / "parse-cache.db")
    try:
        desired = load_revision(repo, revision, path, cache)
    finally:
        cache.close()
    return desired, Provenance(ref, revision.sha, f"{repo_location}:{path}"), revision


def load_pair(repo_location: str, base: str, head: str, path: str, cache_dir: Path
              ) -> tuple[DesiredState, Revision, DesiredState, Revision]:
    """Base and head of a pull request, sharing one parse cache (unchanged files parse once)."""
    repo = GitRepository(repo_location, cache_dir)
    base_rev, head_rev = repo.resolve(base), repo.resolve(head)
    cache = ParseCache(cache_dir / "parse-cache.db")
    try:
        return (load_revision(repo, base_rev, path, cache), base_rev,
                load_revision(repo, head_rev, path, cache), head_rev)
    finally:
        cache.close()
