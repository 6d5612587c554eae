"""What a site offers over REST, read from ``wmi/$metadata`` (OData CSDL) at start-up.

A site's AdminService lists its WMI classes as entity sets and only some of their methods: static methods as
``<ActionImport Name="SMS_Collection.GetNextID" …/>``, instance methods as bound actions
(``<Action Name="AddMembershipRule" IsBound="true">`` whose ``bindingParameter`` is the class). A method that is
not listed cannot be called over REST (many documented WMI methods are absent; ``SetSequence`` was not seen in
any site's document), so the site client decides per operation, from this, whether it goes over REST or WinRM.

The document comes from the network: it is parsed with defusedxml (no entities, no external references) after
the transport bounded its size, and elements are matched by local name so that a CSDL namespace version
(OData v4 ``docs.oasis-open.org`` or the older ``schemas.microsoft.com``) does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from reconciler.errors import shorten
from reconciler.site.errors import PermanentSiteError

#: The namespace prefix of the AdminService's own types in ``$metadata`` (``AdminService.SMS_Collection``).
NAMESPACE = "AdminService"


@dataclass(frozen=True)
class Capabilities:
    """The classes (with their key properties) and the methods a site offers over REST."""

    #: entity set (class) name → its key property names, in order
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: static methods, as ``Class.Method`` (from ``ActionImport``/``FunctionImport``)
    static_methods: frozenset[str] = frozenset()
    #: class → the instance methods bound to it (``Action IsBound="true"``)
    bound_methods: dict[str, frozenset[str]] = field(default_factory=dict)
    #: class → its property names (inherited ones included): ``$select`` may name only these
    properties: dict[str, frozenset[str]] = field(default_factory=dict)

    def offers(self, cls: str, method: str | None = None) -> bool:
        """Whether the site offers the class, or (with ``method``) that method on it, static or bound.

        Class names compare without case, as sites from 2006 on treat them.
        """
        name = self._class(cls)
        if name is None:
            return False
        if method is None:
            return True
        folded = method.casefold()
        if f"{name}.{method}".casefold() in {m.casefold() for m in self.static_methods}:
            return True
        return folded in {m.casefold() for m in self.bound_methods.get(name, frozenset())}

    def offers_static(self, cls: str, method: str) -> bool:
        return f"{cls}.{method}".casefold() in {m.casefold() for m in self.static_methods}

    def offers_bound(self, cls: str, method: str) -> bool:
        name = self._class(cls)
        return name is not None and method.casefold() in {m.casefold() for m in self.bound_methods.get(name, ())}

    def has_property(self, cls: str, name: str) -> bool:
        name_of = self._class(cls)
        return name_of is not None and name in self.properties.get(name_of, frozenset())

    def key_of(self, cls: str) -> tuple[str, ...]:
        name = self._class(cls)
        return self.classes.get(name, ()) if name is not None else ()

    def _class(self, cls: str) -> str | None:
        if cls in self.classes:
            return cls
        folded = cls.casefold()
        return next((name for name in self.classes if name.casefold() == folded), None)

    def summary(self) -> dict[str, Any]:
        """Counts and lists for ``site check``."""
        return {"classes": len(self.classes), "static methods": sorted(self.static_methods),
                "instance methods": {c: sorted(m) for c, m in sorted(self.bound_methods.items())}}


def _local(tag: object) -> str:
    text = tag if isinstance(tag, str) else ""
    return text.rsplit("}", 1)[-1]


def _type_name(text: str | None) -> str:
    """``AdminService.SMS_Collection`` or ``Collection(AdminService.SMS_Collection)`` → ``SMS_Collection``."""
    value = (text or "").strip()
    if value.startswith("Collection(") and value.endswith(")"):
        value = value[len("Collection("):-1]
    return value.rsplit(".", 1)[-1] if value.startswith(f"{NAMESPACE}.") or "." in value else value


def parse_metadata(document: bytes, where: str = "wmi/$metadata") -> Capabilities:
    """The capabilities a ``$metadata`` document lists; a document that is not CSDL is a permanent error."""
    try:
        root = ElementTree.fromstring(document, forbid_dtd=True)
    except (DefusedXmlException, ElementTree.ParseError, ValueError) as exc:
        start = document[:40].decode("utf-8", "replace")
        raise PermanentSiteError(f"{where} is not a CSDL XML document ({shorten(str(exc), 80)}; starts "
                                 f"{shorten(start, 40)})") from None
    if _local(root.tag) != "Edmx":
        raise PermanentSiteError(f"{where} is not a CSDL document: its root element is {_local(root.tag)!r}, not "
                                 "'Edmx'")
    keys: dict[str, tuple[str, ...]] = {}
    own: dict[str, set[str]] = {}
    base_types: dict[str, str] = {}
    sets: dict[str, str] = {}
    static: set[str] = set()
    bound: dict[str, set[str]] = {}
    for element in root.iter():
        tag = _local(element.tag)
        if tag == "EntityType":
            name = element.get("Name") or ""
            key = next((child for child in element if _local(child.tag) == "Key"), None)
            if key is not None:
                keys[name] = tuple(ref.get("Name") or "" for ref in key if _local(ref.tag) == "PropertyRef")
            own[name] = {child.get("Name") or "" for child in element if _local(child.tag) == "Property"}
            if element.get("BaseType"):
                base_types[name] = _type_name(element.get("BaseType"))
        elif tag == "EntitySet":
            sets[element.get("Name") or ""] = _type_name(element.get("EntityType"))
        elif tag in ("ActionImport", "FunctionImport"):
            name = element.get("Name") or ""
            if "." in name:  # a static method: Class.Method
                static.add(name)
        elif tag in ("Action", "Function") and element.get("IsBound", "").lower() == "true":
            binding = next((p for p in element if _local(p.tag) == "Parameter"), None)
            if binding is not None:
                bound.setdefault(_type_name(binding.get("Type")), set()).add(element.get("Name") or "")

    def lineage(type_name: str) -> list[str]:
        chain: list[str] = []
        while type_name and type_name not in chain:
            chain.append(type_name)
            type_name = base_types.get(type_name, "")
        return chain

    def key_for(type_name: str) -> tuple[str, ...]:
        return next((keys[t] for t in lineage(type_name) if t in keys), ())

    if not sets:  # a document without an entity container: its entity types are the classes
        sets = {name: name for name in own if name}
    classes = {name: key_for(entity) for name, entity in sets.items() if name}
    properties = {name: frozenset().union(*(own.get(t, set()) for t in lineage(entity)))
                  for name, entity in sets.items() if name}
    return Capabilities(classes=classes, static_methods=frozenset(static),
                        bound_methods={c: frozenset(m) for c, m in bound.items()}, properties=properties)
