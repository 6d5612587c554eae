"""``reconcile site check``: first contact with a site, in facts a person can act on.

For an AdminService URL (:func:`check_remote`), in this order, each from the site where it can be:

- **who you are**: the authentication tried (:meth:`SiteOptions.describe_auth`), then the account as the site
  knows it: ``SMS_Admin`` (the administrative users, with their roles) looked up by the user name in use
  (for a Kerberos ticket, the principal ``klist`` shows; for a bearer token, its ``upn``); when the site does
  not answer that, the account is the one in the credentials.
- **the site**: ``SMS_Site`` (``SiteCode``, ``SiteName``, ``Version``, ``BuildNumber``, ``ServerName``); a
  hierarchy lists several sites, so the row whose server is the URL's host is taken, else the only primary.
- **what the site offers**: ``wmi/$metadata`` (classes, static and instance methods), and what this tool
  needs that is missing from it.
- **which path each operation takes**: REST or WinRM, as the AdminService site decides it at start-up.
- **what the account may read**: one ``$top=1`` read of each class the tool uses; an access failure (the
  AdminService answers 404 "Access denied", not 403) names the permission a role must grant.
- **whether the account may write**, decided conservatively, without writing anything: "yes" only when
  ``SMS_Admin`` lists the account with a role that creates and modifies task sequences, deployments and
  variables (Full Administrator, Operating System Deployment Manager); "no" when the site is opened
  read-only, the account is not an administrative user, or a read was denied; "unknown" otherwise (a custom
  role, or ``SMS_Admin`` not readable). Security scopes still limit which objects: they are not checked.

For an embedded site file the integrity check (:func:`reconciler.site.check_site`) runs as before, and the
report says what is true of an embedded site: no account or roles (the file's access rights decide), every
operation runs in this process, and whether the file may be written.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.errors import shorten
from reconciler.site.errors import PermanentSiteError, SiteError, TransientSiteError
from reconciler.site.options import SiteOptions

#: Roles that grant creating and modifying task sequences, deployments and collection variables.
WRITER_ROLES = ("Full Administrator", "Operating System Deployment Manager")

#: What a security role must grant to read each class (ConfigMgr console words: object type, then permission).
READ_PERMISSIONS = {
    "SMS_TaskSequencePackage": "Task Sequence Package: Read",
    "SMS_Advertisement": "Collection: Read (deployments)",
    "SMS_Collection": "Collection: Read",
    "SMS_CollectionSettings": "Collection: Read",
    "SMS_MachineSettings": "Collection: Read Resource",
    "SMS_R_System": "Collection: Read Resource",
    "SMS_FullCollectionMembership": "Collection: Read Resource",
    "SMS_Package": "Package: Read",
    "SMS_DriverPackage": "Driver Package: Read",
    "SMS_ImagePackage": "Operating System Image: Read",
    "SMS_BootImagePackage": "Boot Image Package: Read",
    "SMS_OperatingSystemInstallPackage": "Operating System Installer: Read",
    "SMS_DistributionPointInfo": "Distribution Point: Read",
    "SMS_DistributionPoint": "Distribution Point: Read",
    "SMS_DistributionPointGroup": "Distribution Point Group: Read",
    "SMS_PackageStatusDistPointsSummarizer": "the content's object type: Read",
    "SMS_Site": "Site: Read",
    "SMS_SCI_SiteDefinition": "Site: Read",
    "SMS_Admin": "Administrative Users: Read",
}

#: Writes this tool makes, and the permission each needs (for the README and a denied write).
WRITE_PERMISSIONS = ("Task Sequence Package: Create, Modify, Delete", "Collection: Deploy Task Sequences",
                     "Collection: Modify Collection Setting (collection variables)",
                     "Collection: Modify Resource (computer variables)",
                     "Distribution Point: Copy to Distribution Point")


@dataclass
class ClassAccess:
    cls: str
    readable: bool
    detail: str = ""


@dataclass
class SiteReport:
    """What ``site check`` found; ``ok`` when the site answered and everything the tool reads may be read."""

    location: str
    kind: str  # "AdminService" or "embedded site"
    ok: bool = True
    authentication: str | None = None
    account: str | None = None
    account_from: str = ""
    roles: tuple[str, ...] = ()
    site_code: str | None = None
    site_name: str | None = None
    version: str | None = None
    build: int | None = None
    site_from: str = ""
    classes: tuple[str, ...] = ()
    static_methods: tuple[str, ...] = ()
    instance_methods: dict[str, list[str]] = field(default_factory=dict)
    not_offered: tuple[str, ...] = ()
    paths: dict[str, str] = field(default_factory=dict)
    paths_note: str = ""
    winrm: str | None = None
    access: list[ClassAccess] = field(default_factory=list)
    may_write: str = "unknown"  # yes | no | unknown
    write_reason: str = ""
    problems: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location, "kind": self.kind, "ok": self.ok, "authentication": self.authentication,
            "account": self.account, "account_from": self.account_from, "roles": list(self.roles),
            "site": {"code": self.site_code, "name": self.site_name, "version": self.version, "build": self.build,
                     "from": self.site_from},
            "metadata": {"classes": list(self.classes), "static_methods": list(self.static_methods),
                         "instance_methods": self.instance_methods, "not_offered": list(self.not_offered)},
            "paths": self.paths, "paths_note": self.paths_note or None, "winrm": self.winrm,
            "access": [{"class": a.cls, "readable": a.readable, "detail": a.detail or None} for a in self.access],
            "may_write": self.may_write, "write_reason": self.write_reason, "problems": self.problems,
        }


# -- an embedded site ---------------------------------------------------------------------------------------


def embedded_report(path: Path, read_only: bool = False) -> SiteReport:
    """The facts of an embedded site file (its integrity is :func:`reconciler.site.check_site`'s)."""
    from reconciler.site import open_site

    report = SiteReport(str(path), "embedded site", account=getpass.getuser(),
                        account_from="this process's user: the file's owner and mode decide, no ConfigMgr roles",
                        site_from="the embedded site file", paths_note="every operation runs in this process on "
                        "the file: no AdminService, no WinRM")
    try:
        site = open_site(path, read_only=True)
    except SiteError as exc:
        report.fail(str(exc))
        report.may_write = "no"
        return report
    try:
        report.site_code = site.site_code
    finally:
        site.close()
    writable = os.access(path, os.W_OK) and os.access(path.parent if str(path.parent) else Path("."), os.W_OK)
    if read_only:
        report.may_write, report.write_reason = "no", "the site is opened read-only"
    elif writable:
        report.may_write, report.write_reason = "yes", f"{report.account} may write the file and its folder"
    else:
        report.may_write, report.write_reason = "no", f"{report.account} may not write the file or its folder"
    return report


# -- an AdminService ----------------------------------------------------------------------------------------


def check_remote(options: SiteOptions) -> SiteReport:
    """First contact with the AdminService ``options.url``: reads only, each failure named in the report."""
    from reconciler.site.adminservice.metadata import parse_metadata
    from reconciler.site.adminservice.transport import Transport
    from reconciler.site.adminservice.wire import CLASSES

    assert options.url is not None
    report = SiteReport(options.url, "AdminService", authentication=options.describe_auth(),
                        winrm=_winrm_line(options))
    transport = Transport(options)
    try:
        try:
            capabilities = parse_metadata(transport.metadata(), options.url + "/wmi/$metadata")
        except SiteError as exc:
            report.fail(str(exc))
            if "access denied" in str(exc).casefold():
                report.fail("add the account as an administrative user (console: Administration > Security > "
                            "Administrative Users) with a role such as Operating System Deployment Manager and the "
                            f"security scopes of the objects to manage; writing needs {'; '.join(WRITE_PERMISSIONS)}")
            report.account, report.account_from = _named_account(options), "the credentials in use"
            report.may_write, report.write_reason = "no", "the site did not answer wmi/$metadata"
            return report
        report.classes = tuple(sorted(capabilities.classes))
        report.static_methods = tuple(sorted(capabilities.static_methods))
        report.instance_methods = {c: sorted(m) for c, m in sorted(capabilities.bound_methods.items())}
        wanted = [c for c in CLASSES.values() if not c.embedded]
        report.not_offered = tuple(sorted(c.name for c in wanted if not capabilities.offers(c.name)))
        _identify(report, transport, options, capabilities.offers("SMS_Admin"))
        _site_facts(report, transport, options, capabilities.offers("SMS_Site"))
        for wire_class in wanted:
            if capabilities.offers(wire_class.name):
                report.access.append(_probe(transport, wire_class.name, wire_class.key))
        denied = [a for a in report.access if not a.readable]
        for item in denied:
            report.fail(f"cannot read {item.cls}: {item.detail}")
        _decide_write(report, options, denied)
    finally:
        transport.close()
    _paths(report, options)
    return report


def _winrm_line(options: SiteOptions) -> str | None:
    if options.winrm is None:
        return None
    w = options.winrm
    return (f"{w.endpoint} ({w.auth.value} as {w.credentials.describe()}; module {w.configuration_manager_module}; "
            "not contacted by site check)")


def _named_account(options: SiteOptions) -> str:
    credentials = options.credentials
    if options.auth.value == "bearer":
        return _token_user(credentials.token or "") or "the user of the bearer token"
    if credentials.username:
        return credentials.username
    return _ticket_principal() or "the principal of the Kerberos ticket cache"


def _token_user(token: str) -> str | None:
    """The ``upn`` (or ``unique_name``) of a JWT's payload, read without trusting it: only to name the user."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    for claim in ("upn", "unique_name", "preferred_username"):
        if isinstance(claims.get(claim), str):
            return str(claims[claim])
    return None


def _ticket_principal() -> str | None:
    """The default principal of the Kerberos ticket cache, as ``klist`` shows it (None without klist or ticket)."""
    klist = shutil.which("klist")
    if klist is None:
        return None
    try:
        shown = subprocess.run([klist], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in shown.splitlines():
        if line.lower().startswith("default principal:"):
            return line.split(":", 1)[1].strip() or None
    return None


def _user_part(name: str) -> str:
    return name.split("\\")[-1].split("@")[0].casefold()


def _identify(report: SiteReport, transport: Any, options: SiteOptions, offered: bool) -> None:
    from reconciler.site.adminservice.transport import odata_string

    named = _named_account(options)
    report.account, report.account_from = named, "the credentials in use"
    if not offered:
        report.account_from += " (the site does not offer SMS_Admin)"
        return
    try:
        if options.credentials.username and "\\" in options.credentials.username:
            # DOMAIN\name is how the site spells a logon name; user@REALM (Kerberos) is matched by its user part.
            rows = transport.list("SMS_Admin", ("AdminID", "LogonName", "RoleNames"),
                                  f"LogonName eq {odata_string(options.credentials.username)}")
        else:
            rows = [r for r in transport.list("SMS_Admin", ("AdminID", "LogonName", "RoleNames"))
                    if _user_part(str(r.get("LogonName", ""))) == _user_part(named)]
    except SiteError as exc:
        report.account_from += f" (SMS_Admin could not be read: {shorten(str(exc), 160)})"
        return
    if len(rows) == 1:
        report.account = str(rows[0].get("LogonName") or named)
        report.account_from = "the site (SMS_Admin)"
        report.roles = tuple(str(r) for r in rows[0].get("RoleNames") or ())
    elif not rows:
        report.account_from = "the credentials in use; the site lists no administrative user of that name (SMS_Admin)"
        report.roles = ()
        report.may_write, report.write_reason = "no", "the account is not a ConfigMgr administrative user"
    else:
        report.account_from += f" ({len(rows)} administrative users match it in SMS_Admin)"


def _site_facts(report: SiteReport, transport: Any, options: SiteOptions, offered: bool) -> None:
    if not offered:
        report.site_from = "unknown: the site does not offer SMS_Site"
        return
    try:
        rows = transport.list("SMS_Site", ("SiteCode", "SiteName", "Version", "BuildNumber", "ServerName", "Type"))
    except SiteError as exc:
        report.site_from = f"unknown: SMS_Site could not be read ({shorten(str(exc), 160)})"
        return
    host = (urlsplit(options.url or "").hostname or "").casefold()
    chosen = [r for r in rows if str(r.get("ServerName", "")).casefold() in (host, host.split(".")[0])]
    if len(chosen) != 1:
        chosen = [r for r in rows if r.get("Type") == 2] if len(rows) > 1 else rows
    if len(chosen) != 1:
        report.site_from = f"unknown: SMS_Site lists {len(rows)} sites and none is served by {host}"
        return
    row = chosen[0]
    report.site_code, report.site_name = row.get("SiteCode"), row.get("SiteName")
    report.version = row.get("Version")
    build = row.get("BuildNumber")
    report.build = int(build) if isinstance(build, int | str) and str(build).isdigit() else None
    report.site_from = "the site (SMS_Site)" + (f", the row served by {host}" if len(rows) > 1 else "")


#: Classes with a row per device: probed with a filter that matches none (a hierarchy has 100,000s of devices).
_DEVICE_PROBES = {"SMS_R_System": "ResourceID eq 0", "SMS_FullCollectionMembership": "ResourceID eq 0"}


def _probe(transport: Any, cls: str, key: tuple[str, ...]) -> ClassAccess:
    query = {"select": ",".join(key), "top": "1"}
    if cls in _DEVICE_PROBES:
        query["filter"] = _DEVICE_PROBES[cls]
    try:
        transport.request("GET", f"wmi/{cls}", kind="list", query=query)
    except TransientSiteError as exc:
        return ClassAccess(cls, False, f"no answer now ({shorten(str(exc), 160)}); try again")
    except PermanentSiteError as exc:
        permission = READ_PERMISSIONS.get(cls, f"Read on the objects of {cls}")
        return ClassAccess(cls, False, f"{exc}; a security role of the account must grant {permission}")
    return ClassAccess(cls, True)


def _decide_write(report: SiteReport, options: SiteOptions, denied: list[ClassAccess]) -> None:
    if options.read_only:
        report.may_write = "no"
        report.write_reason = f"the site is opened read-only ({options.origins.get('read_only', '--read-only')})"
        return
    if report.may_write == "no":
        return
    if denied:
        report.may_write, report.write_reason = "no", "the account may not even read everything this tool reads"
        return
    writers = [r for r in report.roles if r.casefold() in {w.casefold() for w in WRITER_ROLES}]
    if writers:
        report.may_write = "yes"
        report.write_reason = (f"by role ({', '.join(writers)}, from SMS_Admin); security scopes still limit which "
                               "objects, and they were not checked")
    elif report.roles:
        report.write_reason = (f"the roles {', '.join(report.roles)} are not known to create and modify task "
                               f"sequences; a role needs {'; '.join(WRITE_PERMISSIONS)}")
    else:
        report.write_reason = "the account's roles could not be read (SMS_Admin)"


def _paths(report: SiteReport, options: SiteOptions) -> None:
    """Which operations go over REST and which over WinRM, as the AdminService site decides at start-up."""
    from reconciler.site import UnsupportedSite, open_site

    try:
        site = open_site(options.url or "", options=replace(options, read_only=True))
    except UnsupportedSite as exc:
        report.paths_note = f"unknown: {exc}"
        return
    except SiteError as exc:
        report.paths_note = f"unknown: the site could not be opened ({shorten(str(exc), 160)})"
        return
    try:
        paths = getattr(site, "paths", None)
        if callable(paths):
            report.paths = {str(k): str(v) for k, v in dict(paths()).items()}
        else:
            report.paths_note = "unknown: this site does not say"
    finally:
        site.close()
