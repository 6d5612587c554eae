"""Content on distribution points over the AdminService.

A package is on a distribution point when an ``SMS_DistributionPoint`` instance (package, the DP's NAL path,
site code) exists: creating one distributes, ``RefreshNow`` on it redistributes, deleting it removes the content.
Per-DP state and installed version come from ``SMS_PackageStatusDistPointsSummarizer``.
"""

from __future__ import annotations

from reconciler.site.adminservice import wire
from reconciler.site.adminservice.connection import SiteConnection
from reconciler.site.adminservice.reading import convert
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import ContentStatus


class Content(SiteConnection):
    def content_status(self, package_id: str) -> dict[str, ContentStatus]:
        rows = self._list("SMS_PackageStatusDistPointsSummarizer",
                         f"PackageID eq {wire.odata_literal(package_id)}")
        out = {}
        for row in rows:
            status = convert("SMS_PackageStatusDistPointsSummarizer", wire.content_status_record, row)
            out[status.dp] = status
        return out

    def _dp_keys(self, package_id: str, dps: list[str], known_only: bool) -> dict[str, dict[str, str | int]]:
        """The ``SMS_DistributionPoint`` key of the package on each named DP (names compare without case)."""
        infos = {wire.distribution_point_record(r).name.casefold(): r
                 for r in self._list("SMS_DistributionPointInfo")}
        missing = [dp for dp in dps if dp.casefold() not in infos]
        if missing and not known_only:
            raise PermanentSiteError(f"distribution point(s) {', '.join(missing)} do not exist")
        return {dp: {"PackageID": package_id, "ServerNALPath": str(infos[dp.casefold()].get("NALPath")),
                     "SiteCode": str(infos[dp.casefold()].get("SiteCode") or self.site_code)}
                for dp in dps if dp.casefold() in infos}

    def _on_dps(self, package_id: str) -> set[str]:
        rows = self._list("SMS_DistributionPoint",
                         f"PackageID eq {wire.odata_literal(package_id)}", names=("PackageID", "ServerNALPath",
                                                                                   "SiteCode"))
        return {wire.nal_server(str(r.get("ServerNALPath") or "")).casefold() for r in rows}

    def distribute_content(self, package_id: str, dps: list[str]) -> None:
        self._writable("distribute_content")
        keys = self._dp_keys(package_id, dps, known_only=False)
        present = self._on_dps(package_id)
        for dp, key in keys.items():
            if dp.casefold() in present:  # already there: distributing again is a refresh
                self._transport.update("SMS_DistributionPoint", key, {**key, "RefreshNow": True})
            else:
                self._transport.create("SMS_DistributionPoint", dict(key))

    def redistribute_content(self, package_id: str, dp: str) -> None:
        self._writable("redistribute_content")
        key = self._dp_keys(package_id, [dp], known_only=False)[dp]
        if dp.casefold() in self._on_dps(package_id):
            self._transport.update("SMS_DistributionPoint", key, {**key, "RefreshNow": True})
        else:
            self._transport.create("SMS_DistributionPoint", dict(key))

    def remove_content(self, package_id: str, dps: list[str]) -> None:
        self._writable("remove_content")
        for key in self._dp_keys(package_id, dps, known_only=True).values():
            self._transport.delete("SMS_DistributionPoint", key)
