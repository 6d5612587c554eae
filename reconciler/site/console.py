"""What an administrator does in the ConfigMgr console, done to the embedded site: the way to make drift.

Drift is a change made on the site behind the tool's back. On a real site an administrator makes it in the
console; on the embedded site these functions do the same things, so a plan can be seen to find and revert
them: disable or enable a task sequence, rename it, change its description or a step's command line, change
a deployment's schedule or comment, add or change a collection variable, fail or heal a DP's content.

Each goes through the ``Site`` protocol where it has the operation (a sequence's enabled flag and record, a
deployment's record), and through the embedded site's own inventory helpers where a console edit is finer
than the protocol's writes (one collection variable among masked ones; a DP's content state, which only the
distribution manager sets). Each change is one transaction of its own connection, as a console's is, so a
running controller sees the site changed. A real site is refused: make console changes in its console.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from reconciler.errors import ReconcilerError
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.protocol import Site
from reconciler.site.records import Collection, ContentState, DeploymentRecord, TaskSequenceRecord

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


class ConsoleChangeError(ReconcilerError):
    """A console change cannot be made: the object is not found, or the site is not an embedded one."""


def _embedded(site: Site) -> EmbeddedSite:
    if not isinstance(site, EmbeddedSite):
        raise ConsoleChangeError(f"{site.location} is not an embedded site: make console changes in the ConfigMgr "
                                 "console of a real site")
    return site


def task_sequence(site: Site, ref: str) -> TaskSequenceRecord:
    """A task sequence by PackageID or console name (one, as a console administrator picks it)."""
    found = site.get_task_sequence(ref.upper()) if len(ref) == 8 else None
    if found is not None:
        return found
    matches = site.find_task_sequences(ref)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConsoleChangeError(f"{len(matches)} task sequences are named {ref!r}: name one by its PackageID "
                                 f"({', '.join(str(m.id) for m in matches)})")
    raise ConsoleChangeError(f"site {site.site_code} has no task sequence {ref!r} (by PackageID or console name; "
                             "'reconcile site show' lists them)")


def set_enabled(site: Site, ref: str, enabled: bool) -> str:
    record = task_sequence(site, ref)
    assert record.id is not None
    site.set_task_sequence_enabled(record.id, enabled)
    return f"{'enabled' if enabled else 'disabled'} task sequence {record.name!r} ({record.id})"


def edit_task_sequence(site: Site, ref: str, *, name: str | None = None, description: str | None = None,
                       step: str | None = None, command_line: str | None = None) -> list[str]:
    """Rename a sequence, change its description or a Run Command Line step's command line; what changed."""
    record = task_sequence(site, ref)
    assert record.id is not None
    done = []
    changed = record
    if name is not None:
        changed = replace(changed, name=name)
        done.append(f"renamed {record.name!r} to {name!r}")
    if description is not None:
        changed = replace(changed, description=description)
        done.append(f"description of {record.name!r} set")
    if (step is None) != (command_line is None):
        raise ConsoleChangeError("--step and --command-line go together: the step's name and its new command line")
    if step is not None and command_line is not None:
        changed = replace(changed, sequence=_with_command_line(record, step, command_line))
        done.append(f"command line of step {step!r} of {record.name!r} changed")
    if not done:
        raise ConsoleChangeError("nothing to change: give --name, --description or --step with --command-line")
    site.update_task_sequence(record.id, changed)
    return done


def _with_command_line(record: TaskSequenceRecord, step_name: str, command_line: str) -> str:
    """The sequence XML with one Run Command Line step's command line replaced, as the console writes it."""
    from reconciler.tsxml.xmltext import parse, serialize

    root = parse(record.sequence, where=f"task sequence {record.id}")
    steps = [s for s in root.iter("step") if s.get("name") == step_name]
    if not steps:
        raise ConsoleChangeError(f"task sequence {record.name!r} has no step named {step_name!r}")
    element = steps[0]
    if element.get("type") != "SMS_TaskSequence_RunCommandLineAction":
        raise ConsoleChangeError(f"step {step_name!r} is a {element.get('type')} step; only Run Command Line steps "
                                 "have a command line")
    variables = {v.get("property"): v for v in element.iter("variable")}
    if "CommandLine" not in variables:
        raise ConsoleChangeError(f"step {step_name!r} has no CommandLine property")
    variables["CommandLine"].text = command_line
    action = element.find("action")
    if action is not None:  # the engine's command: smsswd.exe /run:<PackageID> <command line>
        package = variables["PackageID"].text if "PackageID" in variables else ""
        action.text = f"smsswd.exe /run:{package or ''} {command_line}"
    return serialize(root)


def deployment(site: Site, ref: str) -> DeploymentRecord:
    """A deployment by its ID (``PS100018``, in every plan and in 'reconcile site show')."""
    found = site.get_deployment(ref.upper())
    if found is None:
        raise ConsoleChangeError(f"site {site.site_code} has no deployment {ref!r} (give its ID: 'reconcile site "
                                 "show' lists them)")
    return found


def edit_deployment(site: Site, ref: str, *, comment: str | None = None, available_at: datetime | None = None,
                    at: datetime | None = None, weekly: str | None = None, every_weeks: int = 1) -> list[str]:
    """Change a deployment's comment, when it becomes available, or its assignment schedule.

    ``at`` replaces the timed assignments with one: at that time, or from then on every ``every_weeks`` weeks
    on ``weekly``'s day; the event assignments (as soon as possible, logon, logoff) are kept.
    """
    record = deployment(site, ref)
    assert record.id is not None
    done = []
    changed = record
    if comment is not None:
        changed = replace(changed, comment=comment)
        done.append("comment set")
    if available_at is not None:
        changed = replace(changed, present_time=available_at.isoformat(), present_time_enabled=True)
        done.append(f"available from {available_at.isoformat()}")
    if weekly is not None and at is None:
        raise ConsoleChangeError("--weekly needs --at, the time the schedule starts")
    if at is not None:
        token: dict[str, object] = {"StartTime": at.isoformat(), "IsGMT": record.is_gmt}
        if weekly is None:
            token["@odata.type"] = "#AdminService.SMS_ST_NonRecurring"
            done.append(f"assignment schedule set to {at.isoformat()}")
        else:
            day = next((d for d in WEEKDAYS if d.casefold() == weekly.casefold()), None)
            if day is None:
                raise ConsoleChangeError(f"--weekly {weekly[:20]!r}: use a weekday ({', '.join(WEEKDAYS)})")
            token.update({"@odata.type": "#AdminService.SMS_ST_RecurWeekly", "Day": WEEKDAYS.index(day) + 1,
                          "ForNumberOfWeeks": every_weeks})
            done.append(f"assignment schedule set to weekly on {day} every {every_weeks} week(s) from "
                        f"{at.isoformat()}")
        events = tuple(t for t in record.assigned_schedule if "StartTime" not in json.loads(t))
        changed = replace(changed, assigned_schedule=(json.dumps(token, sort_keys=True), *events))
    if not done:
        raise ConsoleChangeError("nothing to change: give --comment, --available-at or --at [--weekly DAY]")
    site.update_deployment(record.id, changed)
    return [f"deployment {record.id}: {item}" for item in done]


def collection(site: Site, ref: str) -> Collection:
    live = site.read()
    found = live.collections.get(ref.upper()) or next(iter(live.collection_by_name(ref)), None)
    if found is None:
        raise ConsoleChangeError(f"site {site.site_code} has no collection {ref!r} (by name or ID)")
    return found


def set_collection_variable(site: Site, collection_ref: str, name: str, value: str) -> str:
    """Add a collection variable, or change its value, keeping the collection's other variables."""
    target = collection(site, collection_ref)
    added = _embedded(site).put_collection_variable(target.id, name, value)
    return f"{'added' if added else 'changed'} variable {name} of collection {target.name!r} ({target.id})"


def set_content(site: Site, package_ref: str, dp: str, failed: bool) -> str:
    """Fail a package's content on a DP (as a distribution error would), or heal it (installed, current)."""
    embedded = _embedded(site)
    live = site.read()
    package = live.packages.get(package_ref.upper()) or next(iter(live.packages_by_name(package_ref)), None) \
        or next((p for p in live.packages.values() if p.name.casefold() == package_ref.casefold()), None)
    if package is None:
        raise ConsoleChangeError(f"site {site.site_code} has no package {package_ref!r} (by name or PackageID)")
    server = next((d for d in live.distribution_points if d.casefold() == dp.casefold()), None)
    if server is None:
        raise ConsoleChangeError(f"site {site.site_code} has no distribution point {dp!r} "
                                 f"({', '.join(sorted(live.distribution_points))})")
    if (package.id, server) not in live.content:
        raise ConsoleChangeError(f"{package.name!r} ({package.id}) was never distributed to {server}")
    if failed:
        embedded.set_content_state(package.id, server, ContentState.INSTALL_FAILED)
        return f"content of {package.name!r} ({package.id}) on {server} failed"
    embedded.set_content_state(package.id, server, ContentState.INSTALLED, package.source_version)
    return f"content of {package.name!r} ({package.id}) on {server} installed (version {package.source_version})"
