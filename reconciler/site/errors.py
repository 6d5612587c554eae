"""What a site says when it cannot do what was asked: typed by whether trying again can help.

Every implementation raises only these from a ``Site`` call; any other exception out of a site is a
bug in it. The controller backs off and retries a :class:`TransientSiteError`; the applier reports a
:class:`PermanentSiteError` as the failure of that one action and goes on with independent ones.
"""

from __future__ import annotations

from reconciler.errors import PermanentError, ReconcilerError, TransientError


class SiteError(ReconcilerError):
    """Base of every error a site raises; catch it to handle any of them."""


class TransientSiteError(TransientError, SiteError):
    """The site could not answer now (busy database, timeout, HTTP 503/429); the same call may work later."""


class PermanentSiteError(PermanentError, SiteError):
    """The site refused the call or cannot be used as it is (refused, does not exist, damaged, newer schema)."""


class SiteNotFound(PermanentSiteError):
    """The site named does not exist (an embedded site file that was never created)."""


class UnsupportedSite(PermanentSiteError):
    """The target names a kind of site this version cannot open yet."""
