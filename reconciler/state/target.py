"""Which state store a command opens, and the password of a database store, from every source.

``--state`` wins; else ``state.url`` in ``reconcile.yaml``; else the SQLite file beside the site (the caller's
default). A database's password is never in its URL: ``RECONCILE_STATE_PASSWORD``, else
``state.password.valueFrom`` (read within the manifests' secrets policy, as the site's credentials are), else
none, and libpq reads ``PGPASSFILE`` (``~/.pgpass``) itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.state.errors import StateError
from reconciler.state.postgres import is_postgres_url

if TYPE_CHECKING:
    from reconciler.config import Config

#: The environment variable that holds a database store's password.
ENV_STATE_PASSWORD = "RECONCILE_STATE_PASSWORD"

#: What ``--state`` names: a SQLite file, or a database URL (kept as text: a Path would fold ``//``).
StateTarget = Path | str


def resolve_state(given: StateTarget | None, settings: Config | None,
                  environ: Mapping[str, str] | None = None) -> tuple[StateTarget | None, str | None]:
    """The state store to open (None: the default file beside the site) and the password of a database."""
    env = os.environ if environ is None else environ
    section = settings.state if settings is not None else None
    target: StateTarget | None = given
    if target is None and section is not None:
        target = section.url
    if not is_postgres_url(target):
        return target, None
    if env.get(ENV_STATE_PASSWORD):
        return target, env[ENV_STATE_PASSWORD]
    if section is None or section.password is None or settings is None:
        return target, None
    from reconciler.secrets import SecretUnavailable, read_secret

    line = settings.state_lines.get("state.password.valueFrom") or settings.state_lines.get("state.password")
    where = f"{settings.source}:{line}" if line else str(settings.source)
    policy = replace(settings.secrets, reserved=frozenset())  # the store's own password is read here, and only here
    try:
        return target, read_secret(section.password.value_from.model_dump(exclude_none=True), policy)
    except SecretUnavailable as exc:
        raise StateError(f"{where}: state.password.valueFrom: {exc}") from None
