"""Who is acting: the person or pipeline an apply, a rollback or a pause is recorded under.

Change management asks "who did this?" of every write. A CI job runs as a service account, so the OS
user alone names the runner, not the person who merged: the CI's own variables name that person. The
order is the most explicit first: ``--actor``, then ``RECONCILE_ACTOR``, then the CI's variables, then
the OS user. When nothing names anyone the record says so in words ("unknown (no actor given)") rather
than inventing ``unknown@host``.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

#: The environment variable that names the actor when ``--actor`` is not given.
ACTOR_ENV = "RECONCILE_ACTOR"

#: CI systems' own variables naming the person who started the run, in the order they are asked.
CI_ACTORS: tuple[tuple[str, str], ...] = (
    ("GITHUB_ACTOR", "GitHub Actions"),
    ("BUILD_REQUESTEDFOR", "Azure DevOps"),  # Build.RequestedFor: the person who queued or merged
    ("GITLAB_USER_LOGIN", "GitLab CI"),
    ("BUILD_USER_ID", "Jenkins"),  # set by Jenkins' build-user-vars plugin
    ("BITBUCKET_STEP_TRIGGERER_UUID", "Bitbucket Pipelines"),
)

UNKNOWN = "unknown (no actor given)"
#: An actor longer than this is cut: it is a name, not a document.
MAX_ACTOR = 200


@dataclass(frozen=True, slots=True)
class Actor:
    """A name and where it came from (``--actor``, ``RECONCILE_ACTOR``, ``GITHUB_ACTOR``, ``OS user``)."""

    name: str
    via: str
    host: str = ""

    @property
    def known(self) -> bool:
        return self.via != "none"

    def __str__(self) -> str:
        if not self.known:
            return UNKNOWN
        where = f" on {self.host}" if self.host else ""
        return f"{self.name} ({self.via}{where})"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "via": self.via, "host": self.host}


def _clean(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ACTOR else text[:MAX_ACTOR] + "…"


def resolve_actor(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Actor:
    """The actor of this process: ``explicit`` (``--actor``), else the environment, else the OS user."""
    env = os.environ if environ is None else environ
    host = socket.gethostname()
    if explicit and explicit.strip():
        return Actor(_clean(explicit), "--actor", host)
    if env.get(ACTOR_ENV, "").strip():
        return Actor(_clean(env[ACTOR_ENV]), ACTOR_ENV, host)
    for variable, _system in CI_ACTORS:
        if env.get(variable, "").strip():
            return Actor(_clean(env[variable]), variable, host)
    user = _os_user(env)
    if user:
        return Actor(_clean(user), "OS user", host)
    return Actor(UNKNOWN, "none", host)


def _os_user(env: Mapping[str, str]) -> str | None:
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if env.get(variable, "").strip():
            return env[variable]
    if env is not os.environ:
        return None  # a given environment is the whole truth (tests, a controller's recorded one)
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry for this uid (a container): nothing names anyone
        return None
