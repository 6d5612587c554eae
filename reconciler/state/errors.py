"""Why the state store cannot be used: typed, so that a controller retries only what may pass."""

from __future__ import annotations

from reconciler.errors import ReconcilerError, TransientError


class StateError(ReconcilerError):
    """The state store cannot be used as it is (newer schema, damaged, lost, cannot be opened or written)."""


class StateBusy(TransientError, StateError):
    """Another process kept the state store locked past the busy timeout: trying again later may work."""


class StateMissing(StateError):
    """A database store holds nothing for this site (a first run, or its rows were lost)."""

    def __init__(self, location: str, site: str) -> None:
        super().__init__(f"state store {location} holds nothing for site {site}")
        self.location = location
        self.site = site


class StateUnreachable(TransientError, StateError):
    """The database of the state store cannot be reached or dropped the connection, and retrying did not help
    within the store's retry time: a controller tries again later (the database may be restarting)."""


class LeaseLost(StateError):
    """A writer's lease was taken over by another writer (it lapsed while this one was paused or cut off): the
    store refused this writer's write, so nothing was written; the writer must stop and become a standby."""

    def __init__(self, site: str, token: int, holder: str | None = None, now_token: int | None = None) -> None:
        now_held = f"now held by {holder} with token {now_token}" if holder else "now unlocked"
        super().__init__(f"site {site}: this writer's lease (fencing token {token}) was lost while it was paused or "
                         f"cut off, {now_held}; the state store refused its write and nothing was written; it goes "
                         "on as a standby")
        self.site = site
        self.token = token
