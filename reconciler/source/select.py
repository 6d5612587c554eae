"""Where the desired state comes from for a run: a folder, or a Git ref read without a checkout."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import git

from reconciler.config import DEFAULT_MAX_MANIFEST_BYTES
from reconciler.source.git import (
    GitRepository,
    MergeConflictError,
    ParseCache,
    Revision,
    load_merge,
    load_revision,
    manifest_conflicts,
)
from reconciler.source.loader import DesiredState, load

log = logging.getLogger("reconciler.source")


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


def load_folder(path: Path, *, max_file_bytes: int = DEFAULT_MAX_MANIFEST_BYTES) -> tuple[DesiredState, Provenance]:
    return load(path, max_file_bytes=max_file_bytes), _folder_provenance(path)


def load_ref(repo_location: str, ref: str, path: str, cache_dir: Path, *,
             max_file_bytes: int = DEFAULT_MAX_MANIFEST_BYTES) -> tuple[DesiredState, Provenance, Revision]:
    repo = GitRepository(repo_location, cache_dir)
    revision = repo.resolve(ref)
    cache = ParseCache(cache_dir / "parse-cache.db")
    try:
        desired = load_revision(repo, revision, path, cache, max_file_bytes=max_file_bytes)
    finally:
        cache.close()
    return desired, Provenance(ref, revision.sha, f"{repo_location}:{path}"), revision


def load_pair(repo_location: str, base: str, head: str, path: str, cache_dir: Path, *,
              max_file_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
              ) -> tuple[DesiredState, Revision, DesiredState, Revision]:
    """A pull request: (manifests before it, base, manifests after merging it, head), sharing one parse cache.

    "After" is the merge of head into base, not head alone: when the base moved on after the branch was
    cut, head still holds the base's old manifests, and planning from it would revert the base's newer
    changes. "Before" is the tip of base, so that before -> after is what merging changes, which for a
    merge without conflicts is the pull request's own change (merge base -> head), except that a change
    both sides made is not listed: merging it changes nothing.
    """
    repo = GitRepository(repo_location, cache_dir)
    base_rev, head_rev = repo.resolve(base), repo.resolve(head)
    cache = ParseCache(cache_dir / "parse-cache.db")
    try:
        if not repo.can_merge():
            # Without a merge result, compare from where the branch was cut, so at least the listed changes
            # are the pull request's own; the plan is of head alone.
            version = ".".join(str(n) for n in repo.repo.git.version_info)
            fork = repo.merge_base(base_rev, head_rev) or base_rev
            log.warning("git %s cannot merge without a working tree (needs 2.38 or later): planning %s alone; "
                        "changes made on %s since %s was cut show as reverted", version, head, base, head)
            return (load_revision(repo, fork, path, cache, max_file_bytes=max_file_bytes), base_rev,
                    load_revision(repo, head_rev, path, cache, max_file_bytes=max_file_bytes), head_rev)
        merge = repo.merge(base_rev, head_rev)
        in_manifests, elsewhere = manifest_conflicts(merge, path)
        if in_manifests:
            raise MergeConflictError(
                f"merging {head} into {base} conflicts in {', '.join(in_manifests)}: there is no merge result "
                f"to plan; merge {base} into {head}, resolve the conflicts and push again")
        if elsewhere:
            log.warning("merging %s into %s conflicts in %s (not manifests under %s); planning the manifests "
                        "of the merge", head, base, ", ".join(elsewhere), path)
        return (load_revision(repo, base_rev, path, cache, max_file_bytes=max_file_bytes), base_rev,
                load_merge(repo, merge, path, cache, max_file_bytes=max_file_bytes), head_rev)
    finally:
        cache.close()
