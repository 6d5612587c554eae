"""Why applying a plan stops: the whole plan refused before any write, or one action that found the site moved.

In their own module because the run loop, the secrets read at preflight and the handlers of each kind
all raise them, and :mod:`reconciler.apply.executor` imports those handlers.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError


class ApplyRefused(ReconcilerError):
    """The plan cannot be applied at all (blocked items, secrets missing); nothing was changed."""


class SiteChangedSincePlan(ReconcilerError):
    """An object the plan did not see appeared on the site before its action ran; the action did nothing."""


class SiteMovedSincePlan(ApplyRefused):
    """Objects the plan would touch changed on the site after it was made; nothing was applied."""
