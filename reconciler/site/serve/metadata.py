"""``wmi/$metadata`` of ``reconcile site serve``: the OData CSDL document a site publishes.

Shaped like a site's (CONFIGMGR.md): an ``EntityType`` per class with its ``Key`` and properties (the WMI
system properties too), UInt32 as ``Edm.Int64``, DateTime as ``Edm.DateTimeOffset``, arrays of embedded classes
as ``Collection(AdminService.<Class>)`` over ``ComplexType`` s; instance methods as bound ``Action`` s whose
``bindingParameter`` is the class; static methods as ``ActionImport Name="<Class>.<Method>"`` in the entity
container. Hidden methods are left out entirely, as the many documented WMI methods a site does not publish
(``SetSequence`` was never seen in a site's document): a client must then take another path.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import quoteattr

from reconciler.site.adminservice.wire import CLASSES, INT32, NAMESPACE, STRING, Method, WireClass

_SYSTEM = (("__CLASS", STRING), ("__DERIVATION", "Collection(Edm.String)"), ("__DYNASTY", STRING),
           ("__GENUS", INT32), ("__NAMESPACE", STRING), ("__PATH", STRING), ("__PROPERTY_COUNT", INT32),
           ("__RELPATH", STRING), ("__SERVER", STRING), ("__SUPERCLASS", STRING),
           ("__LAZYPROPERTIES", "Collection(Edm.String)"))


def hidden(wire_class: WireClass, method: Method, hide: frozenset[str]) -> bool:
    """Whether ``hide`` leaves a method out: by ``Class.Method`` or by the bare method name (every class)."""
    return method.name in hide or f"{wire_class.name}.{method.name}" in hide


def offered(wire_class: WireClass, name: str, bound: bool, hide: frozenset[str]) -> bool:
    """Whether the server offers (and so answers) this method."""
    return any(m.name == name and m.bound == bound and not hidden(wire_class, m, hide) for m in wire_class.methods)


def _property(name: str, edm: str) -> str:
    return f'<Property Name={quoteattr(name)} Type={quoteattr(edm)}/>'


def _action(wire_class: WireClass, method: Method) -> str:
    params = []
    if method.bound:
        params.append(f'<Parameter Name="bindingParameter" Type="{NAMESPACE}.{wire_class.name}"/>')
    params += [f"<Parameter Name={quoteattr(n)} Type={quoteattr(t)}/>" for n, t in method.parameters]
    name = method.name if method.bound else f"{wire_class.name}.{method.name}"
    return (f'<Action Name={quoteattr(name)} IsBound="{"true" if method.bound else "false"}">{"".join(params)}'
            f'<ReturnType Type="{NAMESPACE}.__PARAMETERS"/></Action>')


def metadata_document(hide: Iterable[str] = ()) -> str:
    """The CSDL XML, without the methods named in ``hide``: ``SetSequence`` (any class) or
    ``SMS_TaskSequencePackage.SetSequence``."""
    hide_set = frozenset(hide)
    parts = ['<?xml version="1.0" encoding="utf-8"?>',
             '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
             "<edmx:DataServices>",
             f'<Schema Namespace="{NAMESPACE}" xmlns="http://docs.oasis-open.org/odata/ns/edm">']
    container = [f'<EntityContainer Name="{NAMESPACE}">']
    for wire_class in CLASSES.values():
        props = "".join(_property(p.name, p.edm) for p in wire_class.properties)
        if wire_class.embedded:
            base = f' BaseType="{NAMESPACE}.{wire_class.superclass}"' if wire_class.superclass in CLASSES else ""
            parts.append(f'<ComplexType Name="{wire_class.name}"{base} OpenType="true">{props}</ComplexType>')
            continue
        key = "".join(f'<PropertyRef Name="{name}"/>' for name in wire_class.key)
        system = "".join(_property(n, t) for n, t in _SYSTEM)
        parts.append(f'<EntityType Name="{wire_class.name}"><Key>{key}</Key>{system}{props}</EntityType>')
        container.append(f'<EntitySet Name="{wire_class.name}" EntityType="{NAMESPACE}.{wire_class.name}"/>')
        for method in wire_class.methods:
            if hidden(wire_class, method, hide_set):
                continue
            parts.append(_action(wire_class, method))
            if not method.bound:
                name = f"{wire_class.name}.{method.name}"
                container.append(f'<ActionImport Name="{name}" Action="{NAMESPACE}.{name}"/>')
    parts.append(f'<ComplexType Name="__PARAMETERS" OpenType="true">{_property("ReturnValue", INT32)}</ComplexType>')
    parts += ["".join(container) + "</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(parts) + "\n"
