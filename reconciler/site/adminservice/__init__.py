"""A real ConfigMgr site through its AdminService (REST over HTTPS), with WinRM where REST cannot write.

``transport`` (HTTPS, authentication, retries, paging, errors), ``metadata`` (what ``wmi/$metadata`` offers),
``wire`` (the ConfigMgr classes and their mapping to site records), ``reading`` and ``cache`` (incremental
reads), ``winrm`` (the PowerShell remoting path) and ``site``, which assembles :class:`AdminServiceSite`. Open
a site with :func:`reconciler.site.open_site`; only tests and benchmarks name this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPERATIONS", "AdminServiceSite"]


def __getattr__(name: str) -> Any:
    """The site on first use: the server side imports ``wire`` alone, without the HTTP client."""
    if name in __all__:
        from reconciler.site.adminservice import site

        return getattr(site, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
