"""The notification targets of a run: ``notifications:`` in ``reconcile.yaml`` and ``--notify URL``.

A URL or password written as ``valueFrom`` is read here, once, when the controller starts, with the same
secrets policy as the manifests (without the reservation that keeps manifests from reading these very
sources). A source that cannot be read stops the start with ``file:line: field`` and what is missing, never
the value.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reconciler.config import Config, NotificationTarget
from reconciler.models.base import SecretRef
from reconciler.notify.targets import (
    EmailTarget,
    NotifyError,
    SlackTarget,
    Target,
    TeamsTarget,
    WebhookTarget,
    target_from_url,
)


def _where(settings: Config, index: int, name: str) -> str:
    line = settings.notification_lines.get("notifications.targets") or settings.notification_lines.get(
        "notifications")
    file = settings.source or Path("reconcile.yaml")
    return f"{file}:{line}: notifications.targets[{index}].{name}" if line else \
        f"{file}: notifications.targets[{index}].{name}"


def _value(ref: object, settings: Config, where: str) -> str | None:
    if ref is None or isinstance(ref, str):
        return ref
    from reconciler.secrets import SecretUnavailable, read_secret

    assert isinstance(ref, SecretRef)
    policy = replace(settings.secrets, reserved=frozenset())
    try:
        return read_secret(ref.value_from.model_dump(exclude_none=True), policy)
    except SecretUnavailable as exc:
        raise NotifyError(f"{where}.valueFrom: {exc}") from None


def _target(entry: NotificationTarget, index: int, settings: Config) -> Target:
    if entry.type == "email":
        assert entry.host and entry.sender
        ca = None
        if entry.ca_bundle:
            base = settings.source.parent if settings.source else Path(".")
            ca = str(entry.ca_bundle if Path(entry.ca_bundle).is_absolute() else base / entry.ca_bundle)
        return EmailTarget(entry.host, entry.sender, tuple(entry.to), entry.port, entry.tls, entry.username,
                           _value(entry.password, settings, _where(settings, index, "password")), ca)
    url = _value(entry.url, settings, _where(settings, index, "url"))
    assert url is not None
    return {"webhook": WebhookTarget, "slack": SlackTarget, "teams": TeamsTarget}[entry.type](url)


def notification_targets(settings: Config, urls: tuple[str, ...] = ()) -> list[Target]:
    """Every target: those of ``reconcile.yaml`` first, then each ``--notify``."""
    targets: list[Target] = []
    if settings.notifications is not None:
        targets += [_target(entry, i, settings) for i, entry in enumerate(settings.notifications.targets)]
    targets += [target_from_url(url) for url in urls]
    return targets


def notification_link(settings: Config, listen: str | None) -> str | None:
    """What a notice links to: ``notifications.link``, else the controller's own listener (its web view)."""
    if settings.notifications is not None and settings.notifications.link:
        return settings.notifications.link
    if listen:
        host, _, port = listen.rpartition(":")
        return f"http://{host or '127.0.0.1'}:{port}/"
    return None
