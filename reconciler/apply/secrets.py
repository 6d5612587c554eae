"""The secrets a plan writes, read before its first write: a missing or bad one refuses the whole apply.

Secret values exist only here, between preflight and the write that sends them to the site: a plan
holds references, the journal and the state store hold keyed hashes.
"""

from __future__ import annotations

import logging
from typing import Any

from reconciler.apply.errors import ApplyRefused
from reconciler.plan.actions import Plan, TaskSequenceWrite, VariablesWrite
from reconciler.secrets import HashKeyError, SecretReader, SecretUnavailable
from reconciler.tsxml.sequence import secret_marker_sites, secret_references

log = logging.getLogger("reconciler.apply")

#: A step secret's value by its reference, ``("env" | "file", name)``.
StepSecrets = dict[tuple[str, str], str]
#: A variable's secret value by ``(str(action.ref), variable name)``.
VariableSecrets = dict[tuple[str, str], str]


def resolve_secret(read: SecretReader, source: dict[str, Any], who: str = "this plan") -> str:
    """Read a valueFrom source at apply time; the value goes to the site and nowhere else.

    The reader holds the secrets policy, so a plan made elsewhere (a controller following a commit, an
    old plan) cannot read a file outside the secrets folder or an environment variable off the allow-list.
    """
    try:
        return read(source)
    except SecretUnavailable as exc:
        raise ApplyRefused(f"{exc}; {who} needs it; nothing was applied") from None


def read_secrets(plan: Plan, read: SecretReader) -> tuple[StepSecrets, VariableSecrets]:
    """Every secret of the plan's steps and variables, and the key their hashes are made with.

    Each value is checked as it is read (characters XML cannot hold, ConfigMgr's length limit), so a bad
    one refuses the whole apply instead of failing it halfway.
    """
    step_secrets: StepSecrets = {}
    secret_values: VariableSecrets = {}
    for action in plan.actions:
        at = f" at {action.source}" if action.source else ""
        if isinstance(action.write, TaskSequenceWrite):
            record = action.write.record
            sites = secret_marker_sites(record.sequence)
            for kind, name in secret_references(record.sequence):
                log.debug("%s: reading the secret from %s %s", action.ref, kind, name)
                source = {"env": name} if kind == "env" else {"file": name}
                needed_by = f"{action.ref} ({sites.get(f'{kind}:{name}', 'a step')}){at}"
                step_secrets[(kind, name)] = resolve_secret(read, source, needed_by)
        if not isinstance(action.write, VariablesWrite):
            continue
        for var in action.write.variables:
            if var.value_from:
                needed_by = f"{action.ref} (variable {var.name}){at}"
                secret_values[(str(action.ref), var.name)] = resolve_secret(read, var.value_from, needed_by)
    if step_secrets or secret_values:
        try:
            read.hash_key  # noqa: B018 - made or read now, not after the first write
        except HashKeyError as exc:
            raise ApplyRefused(f"{exc}; nothing was applied") from None
    return step_secrets, secret_values
