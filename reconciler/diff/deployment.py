"""A deployment (``SMS_Advertisement``) in the terms its manifest writes, and the changes between two.

``deployment_canonical`` decodes the flag words into bit names and keeps schedule tokens as they are,
which is exact but reads like the SDK (``options.mediaAndPxeOnly``, ``schedules[0].Day: 6 → 7``). Here
the same record is said as a TaskSequenceDeployment manifest says it: ``availableTo:
MediaAndPxe``, ``schedule.assignments[0]: weekly on Saturday every 2 weeks from 2026-12-05 20:00 UTC``,
``collection: OSD Pilot [PS100001]``. Both a live record and the record ``deployment_record`` builds
from a manifest go through the same decoding, so a manifest compared with itself gives no change.

Nothing a live object holds is hidden because the manifest cannot write it: the bits of ``AdvertFlags``
and ``RemoteClientFlags`` that the decoded settings do not account for (a bit the manifest does not
model, set in the console; two rerun bits at once) are compared too, and shown as ``advertFlags (not in
the manifest)``.

The flag words are decoded by :mod:`reconciler.diff.advertisement` and the schedule tokens by
:mod:`reconciler.diff.schedule`, the decoding ``export.deployment_manifest`` writes a manifest file
from; a test holds them and ``normalize.deployment_record`` together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from reconciler.diff.advertisement import decode_advertisement
from reconciler.diff.changes import FieldChange
from reconciler.diff.compare import field_changes
from reconciler.diff.normalize import deployment_canonical
from reconciler.diff.schedule import (
    EVENT_PHRASES,
    assignment_key,
    assignment_phrase,
    parse_token,
    time_key,
    time_text,
    token_kind,
)
from reconciler.diff.terms import CREATED_BY_PLAN, collection_text, task_sequence_text
from reconciler.site.records import DeploymentRecord, LiveState

#: Paths of the flag bits no manifest field accounts for: not manifest paths, and said so.
ADVERT_FLAGS = "advertFlags (not in the manifest)"
REMOTE_CLIENT_FLAGS = "remoteClientFlags (not in the manifest)"


@dataclass(frozen=True, slots=True)
class _Term:
    """One manifest field of a record: what is compared, and what is shown (``exact``: when two keys
    would read the same)."""

    key: Any
    text: Any
    exact: Callable[[], Any] | None = None


@dataclass(frozen=True, slots=True)
class _Assignment:
    key: str
    phrase: str
    kind: str  # the token kind, or the event
    start: Any = None
    exact: Callable[[], str] | None = None

    def likeness(self, other: _Assignment) -> int:
        """How alike two different assignments are: of one kind, from one start time."""
        return 1 + 2 * (self.kind == other.kind) + (self.start is not None and self.start == other.start)


def _task_sequence(record: DeploymentRecord, live: LiveState) -> str:
    if record.package_id:
        return task_sequence_text(record.package_id, live)
    # A deployment of a sequence this plan creates: deployment_record names it "<sequence>_<collection>".
    collection = live.collections.get(record.collection_id)
    suffix = f"_{collection.name}" if collection is not None else None
    if suffix and record.name.endswith(suffix) and len(record.name) > len(suffix):
        return f"{record.name.removesuffix(suffix)} {CREATED_BY_PLAN}"
    return CREATED_BY_PLAN


def _time_term(value: str | None, enabled: bool, utc: bool | None) -> _Term:
    shown = value if enabled else None
    return _Term(time_key(shown), time_text(shown, utc), lambda: time_text(shown, utc, exact=True))


def _terms(record: DeploymentRecord, live: LiveState) -> tuple[dict[str, _Term], list[_Assignment]]:
    """Every manifest field of a record, in the manifest's order, and its assignment schedules."""
    settings = decode_advertisement(record)
    utc = record.is_gmt
    booleans = settings.booleans

    def plain(value: Any) -> _Term:
        return _Term(value, value)

    terms: dict[str, _Term] = {
        "taskSequence": _Term(record.package_id, _task_sequence(record, live)),
        "collection": _Term(record.collection_id, collection_text(record.collection_id, live)),
        "comment": plain(record.comment),
        "purpose": plain(settings.purpose_text),
        "availableTo": plain(settings.available_to.value),
        "sendWakeUpPackets": plain(booleans["sendWakeUpPackets"]),
        "allowMeteredDownloadAfterDeadline": plain(settings.allow_metered_download_after_deadline),
        "schedule.availableAt": _time_term(record.present_time, record.present_time_enabled, utc),
        "schedule.expiresAt": _time_term(record.expiration_time, record.expiration_time_enabled, utc),
        "schedule.utc": plain(utc),
        "schedule.rerun": plain(settings.rerun.value),
        **{path: plain(booleans[path]) for path in (
            "userExperience.allowRunIndependently", "userExperience.showProgress",
            "userExperience.installOutsideMaintenanceWindow", "userExperience.restartOutsideMaintenanceWindow",
            "userExperience.allowOnInternetClients")},
        "alerts.onFailurePercent": plain(record.alert_failure_percent),
        "alerts.onSuccessBelowPercent": plain(record.alert_success_percent),
        "alerts.onSuccessCheckAfter": _time_term(record.alert_success_after, True, None),
        "content.access": plain(settings.access.value),
        "content.allowRemoteFallback": plain(settings.allow_remote_fallback),
        "content.allowDefaultSiteBoundaryGroup": plain(booleans["content.allowDefaultSiteBoundaryGroup"]),
    }
    assignments = []
    for text in record.assigned_schedule:
        token = parse_token(text)
        assignments.append(_Assignment(assignment_key(token, utc), assignment_phrase(token, utc), token_kind(token),
                                       time_key(token.get("StartTime")),
                                       lambda token=token: assignment_phrase(token, utc, exact=True)))
    assignments += [_Assignment(f"event:{event.value}", EVENT_PHRASES[event.value], event.value)
                    for event in settings.events]
    # What the settings above would write, as deployment_record writes it: any other bit is shown.
    terms[ADVERT_FLAGS] = plain(settings.unmodelled_advert_flags)
    terms[REMOTE_CLIENT_FLAGS] = plain(settings.unmodelled_remote_client_flags)
    return terms, assignments


def deployment_terms(record: DeploymentRecord, live: LiveState) -> dict[str, Any]:
    """A record as its manifest would say it: manifest path → value, in the manifest's order.

    Assignment schedules are ``schedule.assignments[0]``, ``[1]``… in the site's order: timed schedules
    as the record lists them, then the events (as soon as possible, at logon, at logoff), which
    ConfigMgr keeps as flags and so without their place in the manifest's list. The two
    ``… (not in the manifest)`` entries are there only when the record's flags hold bits the settings
    do not account for. Usable for a deployment a plan creates, and for a web view of a live one.
    """
    terms, assignments = _terms(record, live)
    out: dict[str, Any] = {}
    for path, term in terms.items():
        if path == "schedule.rerun":
            out.update({f"schedule.assignments[{i}]": a.phrase for i, a in enumerate(assignments)})
        if path in (ADVERT_FLAGS, REMOTE_CLIENT_FLAGS) and term.text is None:
            continue
        out[path] = term.text
    return out


def _pairs(before: list[_Assignment], after: list[_Assignment]) -> list[tuple[int, int]]:
    """Which of the assignments replaced at one place changed into which, in order: as many as can be,
    the most alike (a weekly schedule edited stays that schedule when a monthly one is added before it)."""
    n, m = len(before), len(after)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = max(best[i + 1][j], best[i][j + 1], best[i + 1][j + 1] + 8 + before[i].likeness(after[j]))
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if best[i][j] == best[i + 1][j + 1] + 8 + before[i].likeness(after[j]):
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _assignment_changes(before: list[_Assignment], after: list[_Assignment]) -> list[FieldChange]:
    """One change per assignment added, removed or changed, aligned by what each schedules.

    Assignments the same on both sides are matched first (a longest common subsequence); between
    two matched ones, a removed and an added assignment are one *changed* assignment.
    """
    out: list[FieldChange] = []
    matcher = SequenceMatcher(None, [a.key for a in before], [a.key for a in after], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        pairs = _pairs(before[i1:i2], after[j1:j2])
        paired_old, paired_new = {i for i, _ in pairs}, {j for _, j in pairs}
        out.extend(FieldChange(f"schedule.assignments[{i1 + i}]", before[i1 + i].phrase, None)
                   for i in range(i2 - i1) if i not in paired_old)
        for i, j in pairs:
            old, new = before[i1 + i], after[j1 + j]
            texts = (old.phrase, new.phrase)
            if texts[0] == texts[1] and old.exact is not None and new.exact is not None:
                texts = (old.exact(), new.exact())
            out.append(FieldChange(f"schedule.assignments[{j1 + j}]", *texts))
        out.extend(FieldChange(f"schedule.assignments[{j1 + j}]", None, after[j1 + j].phrase)
                   for j in range(j2 - j1) if j not in paired_new)
    return sorted(out, key=lambda c: (int(c.path.rsplit("[", 1)[1][:-1]), c.after is not None))


def deployment_changes(before: DeploymentRecord, after: DeploymentRecord, live: LiveState
                       ) -> tuple[FieldChange, ...]:
    """One change per manifest field that differs between two deployment records, in the manifest's order.

    Paths are the manifest's (``purpose``, ``userExperience.showProgress``, ``schedule.assignments[0]``);
    values are in its terms (``OSD Pilot [PS100001]``, ``Required``, ``once at 2026-12-05 20:00
    (client local time)``), never schedule tokens or flag words. A changed list of assignment
    schedules is reported per assignment: added (``None`` before), removed (``None`` after) or changed,
    at its place in the site's order (see :func:`deployment_terms`). Bits of the flag words no manifest
    field accounts for are compared as ``advertFlags (not in the manifest)`` and
    ``remoteClientFlags (not in the manifest)``, so drift made in the console is never hidden.
    """
    old_terms, old_assignments = _terms(before, live)
    new_terms, new_assignments = _terms(after, live)
    out: list[FieldChange] = []
    for path, old in old_terms.items():
        if path == "schedule.rerun":
            out.extend(_assignment_changes(old_assignments, new_assignments))
        new = new_terms[path]
        if old.key == new.key:
            continue
        texts = (old.text, new.text)
        if texts[0] == texts[1] and old.exact is not None and new.exact is not None:
            texts = (old.exact(), new.exact())
        out.append(FieldChange(path, *texts))
    return tuple(out)


def diff_deployment(live: DeploymentRecord, record: DeploymentRecord, state: LiveState) -> tuple[FieldChange, ...]:
    """What differs between a live deployment and the one its manifest asks for; empty when nothing does.

    Whether they differ is decided on the canonical form (flag words decoded, times and tokens as the site
    means them); what is shown is in the manifest's terms, or the canonical fields when those terms cannot
    tell the difference, so a change is never hidden.
    """
    before, after = deployment_canonical(live), deployment_canonical(record)
    if before == after:
        return ()
    return deployment_changes(live, record, state) or field_changes(before, after)
