"""Which XML a sequence is written in: the ConfigMgr console's dialect or MDT's.

The console writes ``<sequence version="3.10">``, leaves ``disable``/``continueOnError`` out when false,
and always writes a step's ``runIn``, ``successCodeList``, ``retryCount`` and ``runFromNet``. MDT
templates (version 3.00) write the flags always and the step attributes only when set. The reader omits
what the dialect would write anyway and the writer fills it in, so both need the same facts.
"""

from __future__ import annotations

from reconciler.models.steptypes import STEP_ELEMENTS

CONSOLE_VERSION = "3.10"
MDT_VERSION = "3.00"

#: Elements that hold the step tree, wherever it nests.
NODE_ELEMENTS = ("group", *STEP_ELEMENTS)


def console_style(version: str | None) -> bool:
    """Whether a sequence of this version is written as the console writes it (anything but MDT's 3.00)."""
    return version != MDT_VERSION
