"""Why the state store cannot be used: typed, so that a controller retries only what may pass."""

from __future__ import annotations

from reconciler.errors import ReconcilerError, TransientError


class StateError(ReconcilerError):
    """The state store cannot be used as it is (newer schema, damaged, lost, cannot be opened or written)."""


class StateBusy(TransientError, StateError):
    """Another process kept the state store locked past the busy timeout: trying again later may work."""
