"""``reconcile vars effective``: a computer's variables, where each comes from, what it overrides."""

from __future__ import annotations

import json
from typing import TextIO

from reconciler.effective import EffectiveVariable
from reconciler.render.schemas import VARS_FORMAT_VERSION
from reconciler.site.records import Computer


def render(computer: Computer, variables: list[EffectiveVariable], out: TextIO, output: str = "text") -> None:
    if output == "json":
        json.dump({"format_version": VARS_FORMAT_VERSION, "computer": computer.name,
                   "resource_id": computer.resource_id, "variables": [
            {"name": v.name, "value": v.value, "from": v.winner.to_json(),
             "overrides": [o.to_json() for o in v.overridden]} for v in variables]}, out, indent=2)
        out.write("\n")
        return
    out.write(f"Variables of {computer.name} (ResourceID {computer.resource_id}): {len(variables)}\n")
    for var in variables:
        out.write(f"\n  {var.name} = {var.value}\n      from {var.winner.describe()}")
        if var.winner.source:
            out.write(f" [{var.winner.source}]")
        out.write("\n")
        for other in var.overridden:
            value = "(sensitive)" if other.hidden else other.value
            out.write(f"      overrides {value!r} from {other.describe()}\n")
