"""The live site: one interface the planner and applier use, whatever the site is.

:func:`open_site` picks the implementation from what ``--site`` names: a path is an embedded site
(a SQLite file that behaves like a ConfigMgr primary site); an ``https://…/AdminService`` URL will be a
real site through the AdminService REST API. Nothing outside this package names an implementation:
the rest of the product sees the :class:`Site` protocol, its records and its typed errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.site.errors import PermanentSiteError, SiteError, SiteNotFound, TransientSiteError, UnsupportedSite
from reconciler.site.protocol import DeviceLookup, Site, VariableValue
from reconciler.site.records import (
    Collection,
    CollectionSettings,
    Computer,
    ContentState,
    ContentStatus,
    DeploymentRecord,
    DistributionPoint,
    DistributionPointGroup,
    LiveState,
    LiveVariable,
    MachineSettings,
    Package,
    PackageType,
    TaskSequenceRecord,
    VerificationSettings,
)
from reconciler.storage import FileCheck

if TYPE_CHECKING:
    from reconciler.site.options import SiteOptions

#: What a site target may be; a URL is kept as text, a path as given.
SiteTarget = str | os.PathLike[str]

_URL_SCHEMES = ("https://", "http://")


def is_url(target: SiteTarget) -> bool:
    """Whether ``--site`` names a remote site (a URL) rather than an embedded site file."""
    return isinstance(target, str) and target.lower().startswith(_URL_SCHEMES)


def _embedded_path(target: SiteTarget, what: str) -> Path:
    """The file of an embedded site; a URL is refused, naming what only an embedded site can do."""
    if is_url(target):
        raise UnsupportedSite(f"{what} works on an embedded site file only, not on {str(target)[:80]!r}")
    return Path(target)


def open_site(target: SiteTarget, *, create_demo: bool = False, read_only: bool = False,
              options: SiteOptions | None = None) -> Site:
    """The site ``target`` names, open: the one place that picks an implementation (DESIGN.md's ``site.open``;
    named so that it never shadows the builtin ``open``).

    A path is an embedded site; a missing file is created with the demo inventory when ``create_demo``,
    else it is :class:`SiteNotFound`. ``read_only`` opens a site this run will not change: a missing file
    is never created, and a write is refused. An ``https://…/AdminService`` URL is a real site through its
    AdminService (:class:`~reconciler.site.adminservice.AdminServiceSite`), reached as ``options`` say.

    ``options`` (:class:`~reconciler.site.options.SiteOptions`) says how to reach a remote site; its
    ``read_only`` (``--read-only``, ``site.readOnly``) opens any site read-only.
    """
    if options is not None and options.read_only:
        read_only = True
    if is_url(target):
        return _open_adminservice(str(target), options, read_only)
    from reconciler.site.embedded import EmbeddedSite

    path = Path(target)
    if not path.exists():
        if read_only or not create_demo:
            raise SiteNotFound(f"site {path} does not exist; create it with 'reconcile site init --site {path}'")
        return create_site(path, demo=True)
    return EmbeddedSite(path, read_only=read_only)


def _open_adminservice(url: str, options: SiteOptions | None, read_only: bool) -> Site:
    from dataclasses import replace

    from reconciler.site.adminservice import AdminServiceSite
    from reconciler.site.options import SiteOptions, normalize_site_url

    if options is None or not options.url:
        options = SiteOptions(url=normalize_site_url(url), read_only=read_only)
    elif read_only and not options.read_only:  # a command that only reads: its writes are refused too
        options = replace(options, read_only=True, origins={**options.origins, "read_only": "a command that reads"})
    return AdminServiceSite(options)


def create_site(target: SiteTarget, *, site_code: str = "PS1", demo: bool = False) -> Site:
    """A new embedded site (``reconcile site init``), with the demo inventory when ``demo``.

    Only an embedded site can be created by this tool; a real site is installed by ConfigMgr setup.
    """
    from reconciler.site.demo import add_demo_inventory
    from reconciler.site.embedded import EmbeddedSite

    site = EmbeddedSite(_embedded_path(target, "creating a site"), site_code)
    if demo:
        try:
            add_demo_inventory(site)
        except BaseException:
            site.close()
            raise
    return site


def check_site(target: SiteTarget) -> FileCheck:
    """``reconcile site check``: integrity, schema version and counts of an embedded site file, read-only."""
    from reconciler.site.embedded import check_site as check_embedded

    return check_embedded(_embedded_path(target, "site check"))


def backup_site(target: SiteTarget, copy: Path, force: bool = False) -> None:
    """``reconcile site backup``: a consistent copy of an embedded site file, safe while it is written to."""
    from reconciler.site.embedded import backup_site as backup_embedded

    backup_embedded(_embedded_path(target, "site backup"), copy, force)


__all__ = [
    "Collection",
    "CollectionSettings",
    "Computer",
    "ContentState",
    "ContentStatus",
    "DeploymentRecord",
    "DeviceLookup",
    "DistributionPoint",
    "DistributionPointGroup",
    "LiveState",
    "LiveVariable",
    "MachineSettings",
    "Package",
    "PackageType",
    "PermanentSiteError",
    "Site",
    "SiteError",
    "SiteNotFound",
    "SiteTarget",
    "TaskSequenceRecord",
    "TransientSiteError",
    "UnsupportedSite",
    "VariableValue",
    "VerificationSettings",
    "backup_site",
    "check_site",
    "create_site",
    "is_url",
    "open_site",
]
