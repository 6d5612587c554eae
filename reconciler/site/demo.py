"""The demo inventory: what the example manifests in manifests/ reference, as a console admin made it."""

from __future__ import annotations

from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import PackageType

DISTRIBUTION_POINTS = ("CM01.corp.contoso.com", "DP01.corp.contoso.com", "DP02.corp.contoso.com",
                       "DP03.branch.contoso.com")
DP_GROUPS = {
    "All DPs": DISTRIBUTION_POINTS,
    "HQ DPs": ("CM01.corp.contoso.com", "DP01.corp.contoso.com", "DP02.corp.contoso.com"),
    "Branch DPs": ("DP03.branch.contoso.com",),
}
#: (name, member count, contains site systems)
COLLECTIONS = (
    ("OSD Pilot", 25, False),
    ("OSD Production Workstations", 80, False),
    ("OSD Build and Capture", 2, False),
    ("OSD Lab", 12, False),
    ("OSD Upgrade Ring 1", 60, False),
    ("OSD Servers", 14, True),
)
#: (name, type, package share enabled)
PACKAGES = (
    ("Boot image (x64)", PackageType.BOOT_IMAGE, False),
    ("Windows 11 23H2 x64", PackageType.OPERATING_SYSTEM_IMAGE, False),
    ("Windows 10 22H2 x64", PackageType.OPERATING_SYSTEM_IMAGE, False),
    ("Windows 11 23H2 Upgrade", PackageType.OPERATING_SYSTEM_UPGRADE, False),
    ("Configuration Manager Client Package", PackageType.PACKAGE, True),
    ("User State Migration Tool for Windows", PackageType.PACKAGE, True),
    ("OSD Tools", PackageType.PACKAGE, True),
    ("Drivers - Dell Latitude 7440", PackageType.DRIVER_PACKAGE, False),
    ("Drivers - HP EliteBook 840 G10", PackageType.DRIVER_PACKAGE, False),
)
COMPUTERS = ("LAB-PC-042", "LAB-PC-043", "OSD-REF-01")


def add_demo_inventory(site: EmbeddedSite) -> None:
    for dp in DISTRIBUTION_POINTS:
        site.add_distribution_point(dp)
    collection_ids = {}
    for name, members, site_systems in COLLECTIONS:
        collection_ids[name] = site.add_collection(name, members, site_systems)
    for name, members in DP_GROUPS.items():
        site.add_dp_group(name, list(members), [collection_ids["OSD Pilot"]] if name == "HQ DPs" else [])
    for name, package_type, share in PACKAGES:
        site.add_package(name, package_type, share)
    computers = {name: site.add_computer(name) for name in COMPUTERS}
    site.add_members(collection_ids["OSD Pilot"], [computers["LAB-PC-042"]])
    site.add_members(collection_ids["OSD Lab"], [computers["LAB-PC-042"], computers["LAB-PC-043"]])
    site.add_members(collection_ids["OSD Production Workstations"], [computers["LAB-PC-043"]])
    site.add_members(collection_ids["OSD Build and Capture"], [computers["OSD-REF-01"]])
