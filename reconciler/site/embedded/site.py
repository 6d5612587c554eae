"""EmbeddedSite: a ConfigMgr primary site in one SQLite file, assembled from one part per concept."""

from __future__ import annotations

from pathlib import Path

from reconciler.site.embedded.content import Content
from reconciler.site.embedded.deployments import Deployments
from reconciler.site.embedded.inventory import Inventory
from reconciler.site.embedded.reading import Reading
from reconciler.site.embedded.schema import BUILT_IN_COLLECTIONS
from reconciler.site.embedded.sequences import TaskSequences
from reconciler.site.embedded.settings import SiteSettings
from reconciler.site.embedded.variables import Variables
from reconciler.site.errors import PermanentSiteError


class EmbeddedSite(Reading, TaskSequences, Deployments, Content, Variables, SiteSettings, Inventory):
    """A ConfigMgr primary site stored in SQLite; implements the ``Site`` protocol.

    It enforces what a real site enforces and the product depends on: IDs in the site's own format
    (``PS100012``), built-in collections with their real IDs that cannot hold variables, write-only
    masked variables and step secrets, at most 1,000 variables per computer, task sequences stored as
    task sequence XML with their reference list refreshed on every write (as ``SetSequence`` does), and
    per-DP content state. Every mutation is one transaction.

    The parts are mixins over one connection rather than objects the site delegates to: they are one
    transactional object split for reading, not parts to swap, and they call each other (a sequence is
    sealed and its boot image checked against the inventory); delegation would add a forwarding method
    for each of the protocol's calls and no behaviour. No two parts define the same name (a test checks).

    ``read_only`` opens an existing file that this object will never write to: a missing file is
    :class:`~reconciler.site.errors.SiteNotFound`, and any write is refused as a
    :class:`~reconciler.site.errors.PermanentSiteError`.
    """

    def __init__(self, path: str | Path, site_code: str | None = None, *, read_only: bool = False) -> None:
        self._connect(path, read_only)
        try:
            self._initialise(site_code)
            self._seal_stored_secrets()
            if read_only:
                self._db.execute("PRAGMA query_only = ON")
        except BaseException:
            self._db.close()
            raise

    def _initialise(self, site_code: str | None) -> None:
        stored = self._meta("site_code")
        if stored is None:
            code = (site_code or "PS1").upper()
            if not (len(code) == 3 and code.isalnum()):
                raise PermanentSiteError(f"site code {code!r} must be three letters or digits, such as PS1")
            with self._tx() as db:
                # Checked again under the write lock: another process may have created the site meanwhile.
                row = db.execute("SELECT value FROM meta WHERE key = 'site_code'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('site_code', ?), ('next_id', '1')", (code,))
                    db.executemany("INSERT INTO collections (id, name, built_in) VALUES (?, ?, 1)",
                                   BUILT_IN_COLLECTIONS.items())
            stored = self._meta("site_code")
        assert stored is not None
        self.site_code = stored

    def __enter__(self) -> EmbeddedSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
