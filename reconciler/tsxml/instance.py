"""A console export's ``object.xml``: one ``SMS_TaskSequencePackage`` as a CIM-XML ``INSTANCE``.

The console's Export Task Sequence wizard writes the package's properties as ``<PROPERTY>`` and
``<PROPERTY.ARRAY>`` elements, with the sequence itself escaped inside the ``Sequence`` property. Both the
reader and the canonical comparison accept such a file in place of a bare ``<sequence>``, so finding the
sequence lives here, below both of them.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from reconciler.errors import CodecError


def find_sequence_text(root: Element, where: str = "") -> tuple[str, dict[str, Any]]:
    """For a console ``object.xml`` (CIM-XML ``INSTANCE``), return the Sequence text and the properties."""
    props: dict[str, Any] = {}
    for p in root:
        name = p.get("NAME")
        if name is None or name.startswith("__"):
            continue
        if p.tag == "PROPERTY":
            value = p.find("VALUE")
            props[name] = None if value is None else (value.text or "")
        elif p.tag == "PROPERTY.ARRAY":
            array = p.find("VALUE.ARRAY")
            props[name] = None if array is None else [v.text or "" for v in array]
    sequence = props.get("Sequence")
    if not sequence:
        raise CodecError("the INSTANCE has no Sequence property (is it an SMS_TaskSequencePackage?)", where=where)
    return sequence, props
