"""An ``SMS_Advertisement``'s flag words decoded into the settings a deployment manifest writes.

``normalize.deployment_record`` packs a manifest's settings into ``AdvertFlags``, ``RemoteClientFlags``
and ``OfferType``; this is the one way back. A plan reads a live deployment through it
(:mod:`reconciler.diff.deployment`) and export writes a manifest from it (:mod:`reconciler.export`),
so what a plan says a deployment holds and what export writes for it cannot drift apart.

A site can hold words no manifest writes (a bit set in the console, two rerun bits at once, an offer
type that is neither Required nor Available). The decoding still gives one value per setting (the
first bit wins, as the manifest's own order reads them) and also the words those settings would
write, so the bits they do not account for are known: a plan shows them, export reports them.
:func:`deployment_settings` says the whole record (flags, times and schedule tokens) as a manifest's
``spec`` writes it, with what it leaves out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.diff.normalize import (
    ASAP,
    DEFAULT_BOUNDARY,
    DOWNLOAD_ALL,
    DOWNLOAD_WHEN_NEEDED,
    INSTALL_OUTSIDE_MW,
    INTERNET_CLIENTS,
    LOGOFF,
    LOGON,
    MEDIA_AND_PXE,
    MEDIA_PXE_HIDDEN,
    MEDIA_PXE_ONLY,
    METERED,
    NO_FALLBACK,
    REMOTE_DOWNLOAD,
    RERUN,
    RESTART_OUTSIDE_MW,
    RUN_FROM_DP,
    RUN_INDEPENDENTLY,
    SHOW_PROGRESS,
    WAKE_ON_LAN,
)
from reconciler.diff.schedule import EVENT_PHRASES, parse_token, token_assignment
from reconciler.models.deployment import MAX_ASSIGNMENTS, AvailableTo, ContentAccess, Event, Purpose, Rerun
from reconciler.site.records import DeploymentRecord

#: SMS_Advertisement.OfferType of each purpose.
OFFER_TYPES = {0: Purpose.REQUIRED, 2: Purpose.AVAILABLE}
#: Event assignments are AdvertFlags bits, in the order a manifest lists them when read back.
EVENT_BITS = ((Event.AS_SOON_AS_POSSIBLE, ASAP), (Event.LOGON, LOGON), (Event.LOGOFF, LOGOFF))
AVAILABLE_TO_BITS = {
    AvailableTo.CLIENTS: 0,
    AvailableTo.CLIENTS_MEDIA_AND_PXE: MEDIA_AND_PXE,
    AvailableTo.MEDIA_AND_PXE: MEDIA_AND_PXE | MEDIA_PXE_ONLY,
    AvailableTo.MEDIA_AND_PXE_HIDDEN: MEDIA_AND_PXE | MEDIA_PXE_ONLY | MEDIA_PXE_HIDDEN,
}
ACCESS_BITS = {ContentAccess.RUN_FROM_DISTRIBUTION_POINT: RUN_FROM_DP,
               ContentAccess.DOWNLOAD_ALL_BEFORE_START: DOWNLOAD_ALL,
               ContentAccess.DOWNLOAD_WHEN_NEEDED: DOWNLOAD_WHEN_NEEDED}
#: The bits of AdvertFlags that hold settings of the product's own (see normalize: their real bits are
#: unverified), shifted into the high word.
_OPTION_BITS = {"userExperience.allowRunIndependently": RUN_INDEPENDENTLY << 32,
                "userExperience.allowOnInternetClients": INTERNET_CLIENTS << 32,
                "content.allowDefaultSiteBoundaryGroup": DEFAULT_BOUNDARY << 32}
#: The manifest's booleans that are one AdvertFlags bit each, by their manifest path.
ADVERT_BOOLEANS = {"sendWakeUpPackets": WAKE_ON_LAN, "userExperience.showProgress": SHOW_PROGRESS,
                   "userExperience.installOutsideMaintenanceWindow": INSTALL_OUTSIDE_MW,
                   "userExperience.restartOutsideMaintenanceWindow": RESTART_OUTSIDE_MW, **_OPTION_BITS}


def flags_text(actual: int, expected: int) -> str | None:
    """The bits of a flag word the manifest's settings do not account for: ``0x1000000`` set beyond
    them, ``without 0x20000`` missing from them; ``None`` when there are none."""
    extra, missing = actual & ~expected, expected & ~actual
    parts = ([f"0x{extra:x}"] if extra else []) + ([f"without 0x{missing:x}"] if missing else [])
    return ", ".join(parts) or None


@dataclass(frozen=True, slots=True)
class AdvertisementSettings:
    """The manifest settings one deployment's flag words hold, and the words those settings write back."""

    offer_type: int
    purpose: Purpose | None  # None: an OfferType no manifest writes
    available_to: AvailableTo
    events: tuple[Event, ...]
    booleans: Mapping[str, bool]  # manifest path → value, for the settings that are one bit each
    allow_metered_download_after_deadline: bool
    rerun: Rerun
    access: ContentAccess
    allow_remote_fallback: bool
    advert_flags: int
    remote_client_flags: int
    expected_advert_flags: int
    expected_remote_client_flags: int

    @property
    def purpose_text(self) -> str:
        """The purpose as a manifest writes it, or what the site holds instead."""
        return self.purpose.value if self.purpose is not None else f"unknown purpose (OfferType {self.offer_type})"

    @property
    def unmodelled_advert_flags(self) -> str | None:
        """AdvertFlags bits the settings do not account for (see :func:`flags_text`)."""
        return flags_text(self.advert_flags, self.expected_advert_flags)

    @property
    def unmodelled_remote_client_flags(self) -> str | None:
        """RemoteClientFlags bits the settings do not account for (see :func:`flags_text`)."""
        return flags_text(self.remote_client_flags, self.expected_remote_client_flags)


def _available_to(advert: int) -> AvailableTo:
    if advert & MEDIA_PXE_HIDDEN:
        return AvailableTo.MEDIA_AND_PXE_HIDDEN
    if advert & MEDIA_PXE_ONLY:
        return AvailableTo.MEDIA_AND_PXE
    return AvailableTo.CLIENTS_MEDIA_AND_PXE if advert & MEDIA_AND_PXE else AvailableTo.CLIENTS


def decode_advertisement(record: DeploymentRecord) -> AdvertisementSettings:
    """The settings of ``record``'s flag words, as ``normalize.deployment_record`` would have written them.

    Where the words hold more than a manifest can say (two rerun bits, two content access bits, a
    bit no setting uses), each setting takes the first bit in the manifest's order and the words the
    settings would write are returned beside the words read, so nothing is lost unnoticed.
    """
    advert, remote = record.advert_flags, record.remote_client_flags
    available_to = _available_to(advert)
    rerun = next((rerun for rerun, bit in RERUN.items() if remote & bit), Rerun.IF_FAILED)
    access = next((access for access, bit in ACCESS_BITS.items() if remote & bit), ContentAccess.DOWNLOAD_WHEN_NEEDED)
    fallback = bool(remote & REMOTE_DOWNLOAD)
    metered = bool(remote & METERED)
    events = tuple(event for event, bit in EVENT_BITS if advert & bit)
    booleans = {path: bool(advert & bit) for path, bit in ADVERT_BOOLEANS.items()}
    expected_advert = sum(bit for event, bit in EVENT_BITS if event in events) | AVAILABLE_TO_BITS[available_to] \
        | (0 if fallback else NO_FALLBACK) | sum(bit for path, bit in ADVERT_BOOLEANS.items() if booleans[path])
    expected_remote = RERUN[rerun] | ACCESS_BITS[access] | (REMOTE_DOWNLOAD if fallback else 0) \
        | (METERED if metered else 0)
    return AdvertisementSettings(
        offer_type=record.offer_type, purpose=OFFER_TYPES.get(record.offer_type), available_to=available_to,
        events=events, booleans=booleans, allow_metered_download_after_deadline=metered, rerun=rerun,
        access=access, allow_remote_fallback=fallback, advert_flags=advert, remote_client_flags=remote,
        expected_advert_flags=expected_advert, expected_remote_client_flags=expected_remote)


def _left_out_bits(word: str, actual: int, expected: int) -> list[str]:
    extra, missing = actual & ~expected, expected & ~actual
    return ([f"{word} bits 0x{extra:x} (no manifest setting holds them)"] if extra else []) + (
        [f"the absence of {word} bits 0x{missing:x} (the settings a manifest writes set them)"] if missing else [])


def deployment_settings(record: DeploymentRecord) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``record`` as a TaskSequenceDeployment's ``spec`` writes it, but for ``taskSequence`` and ``collection``
    (names are the caller's to choose), and what of the record the spec leaves out, in words.

    The inverse of ``normalize.deployment_record``: a record it built comes back as the same settings
    and nothing is left out. What a manifest cannot write is never turned silently into something
    else: an assignment no manifest writes is left out (see :func:`~reconciler.diff.schedule.token_assignment`),
    flag bits no setting holds are named, an OfferType that is neither Required nor Available is said.
    Values are written as the record holds them (times as their text); whether they pass the model's
    checks (times written alike, in range) is the caller's to ask.
    """
    settings = decode_advertisement(record)
    left_out: list[str] = []
    spec: dict[str, Any] = {}
    if record.comment:
        spec["comment"] = record.comment
    spec["purpose"] = (settings.purpose or Purpose.AVAILABLE).value
    if settings.purpose is None:
        left_out.append(f"purpose: OfferType {record.offer_type} is neither Required (0) nor Available (2); "
                        "the manifest's default, Available, is written")
    spec["availableTo"] = settings.available_to.value
    if settings.booleans["sendWakeUpPackets"]:
        spec["sendWakeUpPackets"] = True
    if settings.allow_metered_download_after_deadline:
        spec["allowMeteredDownloadAfterDeadline"] = True
    assignments: list[dict[str, Any]] = []
    for text in record.assigned_schedule:
        decoded = token_assignment(parse_token(text), record.is_gmt)
        if decoded.assignment is not None:
            assignments.append(decoded.assignment)
        left_out.extend(decoded.left_out)
    assignments += [{"event": event.value} for event in settings.events]
    # ConfigMgr keeps up to 15 tokens and the events beside them as flags; a manifest lists 15 in all.
    for extra in assignments[MAX_ASSIGNMENTS:]:
        what = EVENT_PHRASES[extra["event"]] if "event" in extra else f"at {extra['at']}"
        left_out.append(f"assignment {what!r}: a manifest lists at most {MAX_ASSIGNMENTS} assignments")
    del assignments[MAX_ASSIGNMENTS:]
    schedule: dict[str, Any] = {}
    if record.present_time_enabled and record.present_time:
        schedule["availableAt"] = record.present_time
    if record.expiration_time_enabled and record.expiration_time:
        schedule["expiresAt"] = record.expiration_time
    if record.is_gmt:
        schedule["utc"] = True
    if assignments:
        schedule["assignments"] = assignments
    schedule["rerun"] = settings.rerun.value
    spec["schedule"] = schedule
    spec["userExperience"] = {path.removeprefix("userExperience."): settings.booleans[path] for path in (
        "userExperience.allowRunIndependently", "userExperience.showProgress",
        "userExperience.installOutsideMaintenanceWindow", "userExperience.restartOutsideMaintenanceWindow",
        "userExperience.allowOnInternetClients")}
    alerts = {k: v for k, v in (("onFailurePercent", record.alert_failure_percent),
                                ("onSuccessBelowPercent", record.alert_success_percent),
                                ("onSuccessCheckAfter", record.alert_success_after)) if v is not None}
    if alerts:
        spec["alerts"] = alerts
    spec["content"] = {"access": settings.access.value, "allowRemoteFallback": settings.allow_remote_fallback,
                       "allowDefaultSiteBoundaryGroup": settings.booleans["content.allowDefaultSiteBoundaryGroup"]}
    left_out += _left_out_bits("AdvertFlags", settings.advert_flags, settings.expected_advert_flags)
    left_out += _left_out_bits("RemoteClientFlags", settings.remote_client_flags,
                               settings.expected_remote_client_flags)
    return spec, tuple(left_out)
