"""Notifications: the controller says when something changed state (drift, a failed or blocked tick, a
recovery, a high-risk deployment applied), to a webhook, Teams, Slack or e-mail, without holding up a tick."""

from __future__ import annotations

from reconciler.notify.notice import Event, Notice, NoticeObject, notices_for
from reconciler.notify.sender import Notifier, RetryPolicy
from reconciler.notify.settings import notification_link, notification_targets
from reconciler.notify.targets import NotifyError, Target, target_from_url

__all__ = ["Event", "Notice", "NoticeObject", "Notifier", "NotifyError", "RetryPolicy", "Target",
           "notices_for", "notification_link", "notification_targets", "target_from_url"]
