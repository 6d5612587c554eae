"""Where the site and the state store live for a run, and opening them.

Without ``--site`` the embedded site is ``.reconcile/site.db`` under the current folder, created
with the demo inventory on first use, so the quickstart runs against something real. The state
store sits beside the site unless given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.state import StateStore

DEFAULT_SITE = Path(".reconcile") / "site.db"


@dataclass
class Workspace:
    site: EmbeddedSite
    state: StateStore
    created: bool

    def close(self) -> None:
        self.site.close()
        self.state.close()


def state_path_for(site_path: Path) -> Path:
    return site_path.parent / f"{site_path.stem}.state.db" if site_path.name != "site.db" \
        else site_path.parent / "state.db"


def open_workspace(site_path: Path | None, state_path: Path | None = None, create_demo: bool = True) -> Workspace:
    path = site_path or DEFAULT_SITE
    created = not path.exists()
    if created and site_path is not None:
        raise FileNotFoundError(f"site {path} does not exist; create it with 'reconcile site init --site {path}'")
    site = EmbeddedSite(path)
    if created and create_demo:
        add_demo_inventory(site)
    state = StateStore(state_path or state_path_for(path))
    return Workspace(site, state, created)
