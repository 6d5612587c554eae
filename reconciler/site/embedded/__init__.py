"""The embedded site: a ConfigMgr primary site in one SQLite file (the default site, and the demo's).

One module per concept: ``schema`` (migrations, check, backup), ``database`` (the shared connection),
``inventory``, ``sequences``, ``deployments``, ``content``, ``variables``, ``sealing`` (write-only
secrets), ``settings`` (deployment verification), ``reading`` (snapshots and device lookups), and
``site``, which assembles :class:`EmbeddedSite` from them. Open a site with
:func:`reconciler.site.open_site`; only tests, benchmarks and the demo inventory name this package.
"""

from __future__ import annotations

from reconciler.site.embedded.inventory import FIRST_RESOURCE_ID
from reconciler.site.embedded.schema import BUILT_IN_COLLECTIONS, MIGRATIONS, backup_site, check_site, damaged_message
from reconciler.site.embedded.sealing import SEALED_PREFIX
from reconciler.site.embedded.sequences import sequence_references
from reconciler.site.embedded.site import EmbeddedSite
from reconciler.site.embedded.variables import MAX_VARIABLES_PER_COMPUTER
from reconciler.site.errors import PermanentSiteError, SiteError, TransientSiteError

__all__ = [
    "BUILT_IN_COLLECTIONS",
    "FIRST_RESOURCE_ID",
    "MAX_VARIABLES_PER_COMPUTER",
    "MIGRATIONS",
    "SEALED_PREFIX",
    "EmbeddedSite",
    "PermanentSiteError",
    "SiteError",
    "TransientSiteError",
    "backup_site",
    "check_site",
    "damaged_message",
    "sequence_references",
]
