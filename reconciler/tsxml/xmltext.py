"""Safe XML parsing and a small, predictable XML writer for task sequence documents.

Parsing goes through defusedxml: task sequence XML arrives from exports and other people's
repositories, and entity expansion or external entities must never be honoured. Writing is done
here rather than with ``ElementTree.tostring`` so that carriage returns inside values survive a
round trip (XML parsers turn a literal CR LF into LF) and attribute order stays as built.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from reconciler.errors import CodecError


def parse(text: str | bytes, where: str = "") -> Element:
    try:
        return SafeET.fromstring(text)
    except ParseError as exc:
        line, column = exc.position
        raise CodecError(f"malformed XML at line {line}, column {column + 1}: {exc.msg}", where=where) from None
    except DefusedXmlException as exc:
        raise CodecError(f"refused unsafe XML ({type(exc).__name__}): DTDs and entities are not allowed",
                         where=where) from None


def _escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _escape_attr(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        .replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#9;")
    )


def serialize(element: Element, indent: str | None = "  ") -> str:
    """Serialize with optional indentation between elements (never inside text values)."""
    out: list[str] = []

    def write(el: Element, depth: int) -> None:
        pad = "" if indent is None else "\n" + indent * depth
        if depth and indent is not None:
            out.append(pad)
        attrs = "".join(f' {k}="{_escape_attr(v)}"' for k, v in el.attrib.items())
        children = list(el)
        text = el.text or ""
        if not children:
            if el.text is None:
                out.append(f"<{el.tag}{attrs} />")
            else:
                out.append(f"<{el.tag}{attrs}>{_escape_text(text)}</{el.tag}>")
            return
        out.append(f"<{el.tag}{attrs}>")
        if text.strip():
            out.append(_escape_text(text))
        for child in children:
            write(child, depth + 1)
        if indent is not None:
            out.append(pad)
        out.append(f"</{el.tag}>")

    write(element, 0)
    return "".join(out)
