"""The text ConfigMgr writes for a typed setting, and the test that reading it back loses nothing.

A ``<defaultVarList>`` property is text. A typed setting (a boolean, a number, exit codes, a package, a
PowerShell script) is read from that text only when writing the setting back gives exactly the same
text: :func:`typed_value` raises :class:`NotCanonical` for any other spelling (``TRUE``, ``007``, a
script without its byte order mark), and the property then stays verbatim. :func:`text_value` is the
inverse, used by the writer.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from reconciler.models.steptypes import Prop, StepType
from reconciler.tsxml.references import PackageResolver
from reconciler.tsxml.secrets import SecretText, no_secrets


class NotCanonical(Exception):
    """The text would not be written back identically, so the property stays verbatim."""


def encode_script(script: str) -> str:
    """``SourceScript`` as Run PowerShell Script stores it: base64 of UTF-16LE with a BOM, lines ending CR LF."""
    return base64.b64encode(b"\xff\xfe" + script.replace("\n", "\r\n").encode("utf-16-le")).decode("ascii")


def decode_script(text: str) -> str:
    """The script of a ``SourceScript``, with plain line breaks; :class:`NotCanonical` for any other encoding."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NotCanonical from None
    if not raw.startswith(b"\xff\xfe") or len(raw) % 2:
        raise NotCanonical
    try:
        script = raw[2:].decode("utf-16-le")
    except UnicodeDecodeError:
        raise NotCanonical from None
    # The console editor stores CR LF; YAML shows plain line breaks.
    if "\r" in script.replace("\r\n", ""):
        raise NotCanonical
    return script.replace("\r\n", "\n")


def typed_value(prop: Prop, text: str) -> Any:
    """The typed setting ``text`` holds, or :class:`NotCanonical` when writing it back would change the text."""
    kind = prop.kind
    if prop.choices and text and text not in prop.choices:
        raise NotCanonical  # another spelling (PRIMARY) is kept verbatim, never corrected
    if kind in ("str", "app", "textsecret"):
        return text
    if kind == "bool":
        if text == prop.true_text:
            return True
        if text == prop.false_text:
            return False
        raise NotCanonical
    if kind == "int":
        if not re.fullmatch(r"-?(0|[1-9][0-9]*)", text):
            raise NotCanonical
        return int(text)
    if kind == "codes":
        if not re.fullmatch(r"-?[0-9]+( -?[0-9]+)*", text):
            raise NotCanonical
        codes = [int(c) for c in text.split(" ")]
        if " ".join(str(c) for c in codes) != text:
            raise NotCanonical
        return codes
    if kind == "package":
        return "" if text == "" else {"id": text}
    if kind == "script":
        script = decode_script(text)
        if encode_script(script) != text:
            raise NotCanonical
        return script
    raise NotCanonical


def text_value(prop: Prop, value: Any, resolve: PackageResolver, secrets: SecretText = no_secrets) -> str:
    """The property text of a typed setting: the inverse of :func:`typed_value`."""
    kind = prop.kind
    if kind == "bool":
        return prop.true_text if value else prop.false_text
    if kind == "int":
        return str(value)
    if kind == "codes":
        return " ".join(str(c) for c in value)
    if kind == "package":
        return "" if value == "" else resolve(value)
    if kind == "script":
        return encode_script(value)
    if kind == "secret" or isinstance(value, dict):
        return secrets(value["valueFrom"]) if isinstance(value, dict) and value.get("valueFrom") else ""
    return str(value)


def generated_action(known: StepType, properties: dict[str, str]) -> str:
    """The ``<action>`` command line the console builds for a step of this type from its properties."""
    return known.action(properties) if callable(known.action) else known.action
