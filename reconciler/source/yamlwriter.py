"""YAML that people read and review: manifests written by ``convert``, ``import`` and ``export``.

Multi-line text (PowerShell scripts, command lines with line breaks, rules) is written as a literal
block scalar (``|``, ``|-``, ``|+``, ``|2-``), never as one double-quoted line full of ``\\n``, so a
script reads and diffs as the script it is. PyYAML's emitter (C and Python alike) refuses block style
for any text with a space before a line break or at its very end, or with a tab, and silently falls
back to double quotes: 24 of the 46 multi-line texts in the corpus of real sequences did. Those are
ordinary content of a literal block scalar, read back exactly by libyaml and PyYAML alike, so
:class:`_LiteralDumper` allows block style for every text :func:`literal_block_exact` accepts. Only
text holding a character a YAML block cannot carry stays double-quoted: a carriage return (a YAML
reader turns every line break into ``\\n``), NEL, LS, PS, a byte order mark, or a control character
other than tab and line feed.

The fast path stays libyaml's C emitter; a document is emitted again by the Python emitter only when
it holds a text the C emitter would quote but a literal block can carry exactly.
"""

from __future__ import annotations

import io
import re
from typing import Any

import yaml
from yaml.emitter import Emitter

_STR_TAG = "tag:yaml.org,2002:str"

#: Characters a literal block scalar carries exactly: tab, line feed and YAML's printable characters
#: (PyYAML's and libyaml's set), less those a reader treats as a line break (NEL, LS, PS) or drops (BOM).
_NOT_IN_BLOCK = re.compile("[^\t\n\x20-\x7e\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010fffe]")


def literal_block_exact(text: str) -> bool:
    """Whether ``text`` with a line break reads back identically from a literal block scalar.

    Leading spaces or line breaks need an indentation indicator (the emitter writes ``|2``); spaces
    before a line break or at the end are ordinary content of a literal block; only the characters
    :data:`_NOT_IN_BLOCK` finds cannot be written in one.
    """
    return "\n" in text and _NOT_IN_BLOCK.search(text) is None


class _LiteralDumper(yaml.SafeDumper):
    """PyYAML's Python dumper, writing a literal block for every text :func:`literal_block_exact` accepts."""

    def choose_scalar_style(self) -> str:
        event = self.event
        if (event.style == "|" and not self.flow_level and not self.simple_key_context
                and literal_block_exact(event.value)):
            if self.analysis is None:
                self.analysis = self.analyze_scalar(event.value)
            return "|"
        return super().choose_scalar_style()  # type: ignore[no-any-return]

    def determine_block_hints(self, text: str) -> str:
        hints: str = super().determine_block_hints(text)
        if text[:1] == "\t":
            # libyaml (the loader manifests are read with) refuses a tab where it detects a block's
            # indentation, so a first line starting with one needs the indentation given (|2).
            hints = str(self.best_indent) + hints
        return hints


_CDumper: type | None = getattr(yaml, "CSafeDumper", None)


class _FastDumper(_CDumper or yaml.SafeDumper):  # type: ignore[misc]
    """libyaml's emitter: every document whose multi-line texts it writes as blocks itself."""


class _NeedsLiteralEmitter(Exception):
    """The C emitter would quote a text that a literal block carries exactly: emit with Python instead."""


_ANALYSER = Emitter(io.StringIO(), allow_unicode=True)
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


def _c_emitter_writes_block(text: str) -> bool:
    """PyYAML's analysis applies libyaml's rules, except that libyaml prints no character beyond U+FFFF."""
    return bool(_ANALYSER.analyze_scalar(text).allow_block) and _BEYOND_BMP.search(text) is None


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" not in value:
        return dumper.represent_scalar(_STR_TAG, value)
    if not literal_block_exact(value):
        # Double quotes escape what a block cannot carry; PyYAML would write a NEL raw into a block.
        return dumper.represent_scalar(_STR_TAG, value, style='"')
    if isinstance(dumper, _FastDumper) and _CDumper is not None and not _c_emitter_writes_block(value):
        raise _NeedsLiteralEmitter
    return dumper.represent_scalar(_STR_TAG, value, style="|")


_FastDumper.add_representer(str, _represent_str)
_LiteralDumper.add_representer(str, _represent_str)


def dump(data: Any, *, explicit_start: bool = False) -> str:
    """Manifest YAML: keys in insertion order, Unicode as written, multi-line text as literal blocks."""
    options: dict[str, Any] = {"sort_keys": False, "allow_unicode": True, "width": 110,
                               "explicit_start": explicit_start}
    if _CDumper is not None:
        try:
            return yaml.dump(data, Dumper=_FastDumper, **options)  # type: ignore[no-any-return]
        except _NeedsLiteralEmitter:
            pass
    return yaml.dump(data, Dumper=_LiteralDumper, **options)  # type: ignore[no-any-return]
