"""The read-only web view of an estate: overview, object pages with the plan's step-aware changes, the plan,
the history. Served by ``reconcile serve`` and by the controller's ``--listen``; rendered on the server with
Jinja2 (autoescape on); every asset is in this package, so it works on a server without internet access.

:mod:`~reconciler.web.refresh` makes immutable snapshots in a thread of its own (the only code here that
reads the site and the state store, read-only); :mod:`~reconciler.web.app` answers requests from the latest
one; :mod:`~reconciler.web.access` decides who may read it.
"""

from reconciler.web.access import Access, WebAccessError, access_for, is_loopback, parse_listen
from reconciler.web.app import WebApp
from reconciler.web.refresh import FolderSource, GitSource, Refresher
from reconciler.web.server import WebServer
from reconciler.web.view import WebView

__all__ = ["Access", "FolderSource", "GitSource", "Refresher", "WebAccessError", "WebApp", "WebServer", "WebView",
           "access_for", "is_loopback", "parse_listen"]
