"""Prestaged content: every package a task sequence needs, in a file a distribution point can import offline.

``reconcile prestage TASK_SEQUENCE --out FILE.pkgx [--dp SOURCE_DP]`` does what the console's "Create Prestaged
Content File" does for a task sequence: the packages, boot image, images and driver packages it references, and
those of the child sequences it runs (at any depth), taken from one distribution point that holds all of them at
their current version.

- A **real site** (an AdminService URL) runs ``Publish-CMPrestageContent`` on the WinRM host (the AdminService has
  no prestage call). The file is written **on that host**, so ``--out`` is a path there: an absolute Windows path
  (``C:\\Prestage\\win11.pkgx``) or a share (``\\\\fs01\\prestage\\win11.pkgx``). The cmdlet takes one kind of
  content per call, so a sequence with several kinds gets one file per kind beside that name
  (``win11-Package.pkgx``, ``win11-BootImage.pkgx``, …).
- The **embedded site** holds no content bytes, so no real ``.pkgx`` can be made: the file written is a JSON
  listing of the packages and versions that a real prestage would hold (``"kind": "PrestageListing"``), which
  says so in its ``note``. It exercises the whole command end to end.

Nothing on the site changes, so a read-only site (``--read-only``) may prestage.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.diff.normalize import ts_references
from reconciler.errors import ReconcilerError, shorten
from reconciler.site import ContentState, LiveState, Site, TaskSequenceRecord

if TYPE_CHECKING:
    from reconciler.site.adminservice.winrm import WinRMSession
    from reconciler.site.options import SiteOptions

LISTING_KIND = "PrestageListing"
LISTING_NOTE = ("Not a prestaged content file: the embedded site holds no content bytes. This lists the content a "
                "prestaged content file of this task sequence would hold; on a real site 'reconcile prestage' runs "
                "Publish-CMPrestageContent over WinRM and writes the .pkgx on the WinRM host.")


class PrestageError(ReconcilerError):
    """The task sequence cannot be prestaged as asked (unknown, content missing or not on the source DP)."""


@dataclass(frozen=True, slots=True)
class PrestageItem:
    """One piece of content: its ID, console name, kind (a ``PackageType`` name) and source version."""

    package_id: str
    name: str
    kind: str
    source_version: int
    #: the task sequences (the one named, or a child) that reference it
    referenced_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PrestagePlan:
    """What one prestage holds and where its content is taken from."""

    task_sequence: TaskSequenceRecord
    children: tuple[TaskSequenceRecord, ...]
    items: tuple[PrestageItem, ...]
    source_dp: str

    def by_kind(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for item in self.items:
            out.setdefault(item.kind, []).append(item.package_id)
        return out


@dataclass
class PrestageResult:
    plan: PrestagePlan
    #: the files written (paths on the WinRM host for a real site)
    files: list[str] = field(default_factory=list)
    #: where they were written: "local" (a listing) or the WinRM host's name
    written_on: str = "local"
    listing: bool = False


def find_task_sequence(live: LiveState, target: str) -> TaskSequenceRecord:
    """By PackageID, else by console name (without case, as the site compares them)."""
    record = live.task_sequences.get(target.upper())
    if record is not None:
        return record
    named = [r for r in live.task_sequences.values() if r.name.casefold() == target.casefold()]
    if len(named) > 1:
        ids = ", ".join(sorted(str(r.id) for r in named))
        raise PrestageError(f"{len(named)} task sequences are named {shorten(target)} ({ids}); name one by its "
                            "PackageID")
    if not named:
        raise PrestageError(f"site {live.site_code} has no task sequence {shorten(target)} (by PackageID or console "
                            "name)")
    return named[0]


def plan_prestage(live: LiveState, target: str, dp: str | None = None) -> PrestagePlan:
    """The content of ``target`` and its child sequences, and the distribution point to take it from.

    ``dp`` must hold every item, installed at its current source version; without it, the first such
    distribution point by name is chosen, and none is an error naming what each lacks.
    """
    record = find_task_sequence(live, target)
    items: dict[str, PrestageItem] = {}
    children: list[TaskSequenceRecord] = []
    missing: list[str] = []
    seen = {str(record.id)}
    pending = [record]
    while pending:
        current = pending.pop(0)
        for ref in ts_references(current):
            child = live.task_sequences.get(ref)
            if child is not None:
                if ref not in seen:
                    seen.add(ref)
                    children.append(child)
                    pending.append(child)
                continue
            package = live.packages.get(ref)
            if package is None:
                missing.append(f"{ref} (referenced by {current.id})")
                continue
            previous = items.get(ref)
            by = (*previous.referenced_by, str(current.id)) if previous else (str(current.id),)
            items[ref] = PrestageItem(ref, package.name, package.type.value, package.source_version,
                                      tuple(dict.fromkeys(by)))
    if missing:
        raise PrestageError(f"task sequence {record.name} [{record.id}] references content the site does not have: "
                            f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
    if not items:
        raise PrestageError(f"task sequence {record.name} [{record.id}] references no content to prestage")
    ordered = tuple(sorted(items.values(), key=lambda i: (i.kind, i.package_id)))
    return PrestagePlan(record, tuple(children), ordered, _source_dp(live, ordered, dp, record))


def _lacking(live: LiveState, items: tuple[PrestageItem, ...], dp: str) -> list[str]:
    out = []
    for item in items:
        status = live.content.get((item.package_id, dp))
        if status is None:
            out.append(f"{item.package_id} (not distributed)")
        elif status.state is not ContentState.INSTALLED:
            out.append(f"{item.package_id} ({status.state.name.lower().replace('_', ' ')})")
        elif status.installed_version != item.source_version:
            out.append(f"{item.package_id} (version {status.installed_version}, current {item.source_version})")
    return out


def _source_dp(live: LiveState, items: tuple[PrestageItem, ...], dp: str | None, record: TaskSequenceRecord) -> str:
    names = {name.casefold(): name for name in live.distribution_points}
    if dp is not None:
        chosen = names.get(dp.casefold())
        if chosen is None:
            raise PrestageError(f"site {live.site_code} has no distribution point {shorten(dp)}; distribution points: "
                                f"{', '.join(sorted(live.distribution_points)) or 'none'}")
        lacking = _lacking(live, items, chosen)
        if lacking:
            raise PrestageError(f"distribution point {chosen} does not hold all the content of {record.name} at its "
                                f"current version: {', '.join(lacking[:10])}; distribute it first, or name another "
                                "with --dp")
        return chosen
    reasons = []
    for name in sorted(live.distribution_points, key=str.casefold):
        lacking = _lacking(live, items, name)
        if not lacking:
            return name
        reasons.append(f"{name} lacks {', '.join(lacking[:3])}{' …' if len(lacking) > 3 else ''}")
    raise PrestageError(f"no distribution point holds all the content of {record.name} [{record.id}] at its current "
                        f"version ({'; '.join(reasons) or 'the site has no distribution point'}); distribute it "
                        "first")


def write_listing(plan: PrestagePlan, out: Path, site: Site, force: bool = False) -> None:
    """The embedded site's stand-in for a .pkgx: JSON naming every item and version; written whole or not at all."""
    if out.exists() and not force:
        raise PrestageError(f"{out} already exists; pass --force to overwrite it")
    ts = plan.task_sequence
    document: dict[str, Any] = {
        "kind": LISTING_KIND, "formatVersion": 1, "note": LISTING_NOTE,
        "site": site.site_code, "siteLocation": site.location,
        "taskSequence": {"id": ts.id, "name": ts.name},
        "childSequences": [{"id": c.id, "name": c.name} for c in plan.children],
        "sourceDistributionPoint": plan.source_dp,
        "content": [{"id": i.package_id, "name": i.name, "type": i.kind, "sourceVersion": i.source_version,
                     "referencedBy": list(i.referenced_by)} for i in plan.items],
    }
    folder = out.parent if str(out.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(temporary, out)
    except OSError as exc:
        raise PrestageError(f"{out} cannot be written: {exc.strerror or exc}") from None


def prestage(site: Site, target: str, out: str | Path, dp: str | None = None, *,
             options: SiteOptions | None = None, force: bool = False,
             session: Callable[[SiteOptions, str], WinRMSession | None] | None = None) -> PrestageResult:
    """Prestage ``target``'s content from ``dp`` into ``out``: over WinRM for a remote site, a listing otherwise.

    ``session`` builds the WinRM session of a remote site (default: from ``options.winrm``); tests pass one
    that talks to a stand-in host.
    """
    plan = plan_prestage(site.read(), target, dp)
    if options is not None and options.url:
        from reconciler.site.adminservice.winrm import require, session_for

        opened = require((session or session_for)(options, site.site_code), "prestaging content "
                         "(Publish-CMPrestageContent)", options.url)
        with opened:
            files = opened.publish_prestage(plan.by_kind(), str(out), plan.source_dp)
        return PrestageResult(plan, files, written_on=opened.options.host)
    path = Path(out)
    write_listing(plan, path, site, force)
    return PrestageResult(plan, [str(path)], listing=True)
