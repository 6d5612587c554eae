"""Where a package's content stands on the distribution points that should hold it."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.site.records import ContentState, ContentStatus, Package

_FAILED_STATES = {ContentState.INSTALL_FAILED, ContentState.REMOVAL_FAILED}
_LEAVING_STATES = (ContentState.REMOVAL_PENDING, ContentState.REMOVAL_RETRYING)


def content_gaps(package: Package, dps: Iterable[str], status: dict[str, ContentStatus]
                 ) -> tuple[list[str], list[str]]:
    """(DPs that lack the content or are removing it, DPs where it failed or holds an older version).

    Content still on its way (install pending, retrying, updating) is in neither: it is left to finish.
    """
    lacking, failed = [], []
    for dp in dps:
        current = status.get(dp)
        if current is None or current.state in _LEAVING_STATES:
            lacking.append(dp)
        elif current.state in _FAILED_STATES or (current.state is ContentState.INSTALLED
                                                 and current.installed_version < package.source_version):
            failed.append(dp)
    return lacking, failed
