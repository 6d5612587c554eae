"""Where the site and the state store live for a run, and opening them.

Without ``--site`` the embedded site is ``site.db`` in the nearest ``.reconcile/`` folder, found by walking up
from the current folder as git finds a repository; only when there is none is ``.reconcile/site.db`` created
here, with the demo inventory, so the quickstart runs against something real. The state
store sits beside the site unless given.

The state store is the only record of which live objects this tool owns, of the apply history and of
the hashes of the secrets it wrote. A missing (or 0-byte) state store beside a site that already holds
objects this tool could manage is therefore an error, not a new empty store: an empty one would make
the next plan refuse every object as "not managed" without saying why. ``new_state`` (``--new-state``)
starts over on purpose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from reconciler.site import Site, SiteTarget, create_site, is_url, open_site

if TYPE_CHECKING:
    from reconciler.site.options import SiteOptions
from reconciler.state import StateBackend, StateError, StateMissing, is_state_url, open_state

#: The folder that holds a workspace's embedded site, state store and caches.
WORKSPACE_FOLDER = ".reconcile"
#: Where a new embedded site is created when no workspace is found (relative to the current folder).
DEFAULT_SITE = Path(WORKSPACE_FOLDER) / "site.db"


def find_workspace(start: Path | None = None) -> Path | None:
    """The nearest ``.reconcile/`` folder in ``start`` (the current folder) or above it, as git finds ``.git``.

    Run from a subfolder of a repository, a command uses the site at the repository's top instead of quietly
    creating a new demo site where it stands.
    """
    here = Path(os.path.abspath(start or Path.cwd()))
    for folder in (here, *here.parents):
        if (folder / WORKSPACE_FOLDER).is_dir():
            return folder / WORKSPACE_FOLDER
    return None


def default_site() -> Path:
    """The embedded site without ``--site``: ``site.db`` of the nearest workspace, else ``.reconcile/site.db`` here
    (created with the demo inventory on first use). Relative when the workspace is the current folder's own."""
    found = find_workspace()
    if found is None or found == Path(os.path.abspath(WORKSPACE_FOLDER)):
        return DEFAULT_SITE
    return found / "site.db"


@dataclass
class Workspace:
    site: Site
    state: StateBackend
    created: bool

    def close(self) -> None:
        self.site.close()
        self.state.close()


def state_path_for(site_path: SiteTarget) -> Path:
    """The state store's default file: beside an embedded site; for a remote site, which has no file to sit
    beside, ``.reconcile/<host>.state.db`` (see :func:`reconciler.site.options.default_state_file`)."""
    if is_url(site_path):
        from reconciler.site.options import default_state_file

        return default_state_file(str(site_path))
    site_path = Path(site_path)
    return site_path.parent / f"{site_path.stem}.state.db" if site_path.name != "site.db" \
        else site_path.parent / "state.db"


def open_site_alone(site_path: SiteTarget | None, *, create_demo: bool = True,
                    read_only: bool = False, options: SiteOptions | None = None) -> tuple[Site, bool]:
    """The site alone, for commands that never read the state store (and so never create it).

    Without ``--site`` the default embedded site is created with the demo inventory on first use (also for a
    command that only reads: the quickstart's first command may be ``site show``), and is True in the result.
    A site named with ``--site`` must exist.
    """
    if site_path is not None:
        return open_site(site_path, read_only=read_only, options=options), False
    path = default_site()
    created = not path.exists()
    if created:
        create_site(path, demo=create_demo).close()
    return open_site(path, read_only=read_only, options=options), created


def open_workspace(site_path: SiteTarget | None, state_path: Path | str | None = None, create_demo: bool = True,
                   new_state: bool = False, read_only: bool = False,
                   options: SiteOptions | None = None, state_password: str | None = None) -> Workspace:
    """The site and its state store; refuses a lost state store beside a site with objects unless ``new_state``.

    ``read_only`` opens the site for reading only (the state store is written as usual: status, journal).
    ``state_path`` may be a ``postgresql://`` URL (``state_password`` its password): the site's rows there.
    """
    site, created = open_site_alone(site_path, create_demo=create_demo, read_only=read_only, options=options)
    try:
        if is_state_url(state_path):
            state = open_shared_state(str(state_path), site, state_password, new_state)
            return Workspace(site, state, created)
        path = Path(state_path) if state_path else state_path_for(site_path or default_site())
        if not new_state:
            refuse_lost_state(path, site)
        state = open_state(path)
    except BaseException:
        site.close()
        raise
    return Workspace(site, state, created)


def open_shared_state(url: str, site: Site, password: str | None, new_state: bool) -> StateBackend:
    """The site's rows in a database store. A database that holds nothing for this site, while the site holds
    objects this tool could manage, is refused as a missing state file is (unless ``new_state``)."""
    found = {what: number for what, number in site.manageable().items() if number}
    try:
        return open_state(url, site=site.site_code, password=password, create=new_state or not found)
    except StateMissing as exc:
        _refuse_lost(exc.location, f"holds nothing for site {site.site_code}", site, found)


def refuse_lost_state(path: Path, site: Site) -> None:
    """Raise when the state store is missing or empty while the site holds objects this tool could manage."""
    if path.exists() and path.stat().st_size > 0:
        return
    found = {what: number for what, number in site.manageable().items() if number}
    if not found:
        return  # a new site, or one with inventory only: nothing could have been owned yet
    _refuse_lost(str(path), "is empty (0 bytes)" if path.exists() else "does not exist", site, found)


def _refuse_lost(where: str, what: str, site: Site, found: dict[str, int]) -> NoReturn:
    listing = ", ".join(f"{number} {kind}" for kind, number in found.items())
    raise StateError(
        f"state store {where} {what}, but site {site.site_code} ({site.location}) has {listing} that this tool may "
        "manage. The state store records which objects this tool owns, the apply history and the hashes of the "
        "secrets it wrote: if it was lost, restore it from a backup; to start over (or on a first run against "
        "this site) pass --new-state, then take existing objects over with --adopt or 'reconcile export'")
