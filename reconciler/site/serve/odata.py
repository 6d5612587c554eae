"""The OData side of ``reconcile site serve``: routes, keys, query options and error bodies.

Only what sites were seen to do (CONFIGMGR.md, section AdminService), read strictly so that a client that
leans on anything else fails here first:

- routes ``wmi/<Class>``, ``wmi/<Class>(<key>)``, ``wmi/<Class>.<Method>`` (static),
  ``wmi/<Class>(<key>)/AdminService.<Method>`` (bound) and ``wmi/$metadata``; class names compare **with**
  case (sites before 2006 did; later ones do not);
- keys: a quoted string ``('PS100012')`` (``''`` inside), a bare number ``(16777220)``, or ``Name=value`` pairs;
- ``$filter`` with ``eq``, ``and``, parentheses and ``startswith(Name,'x') eq true`` only; string comparisons
  ignore case, as WQL against the site database does; ``$select``; ``$top``/``$skip`` (no server paging, no
  ``@odata.nextLink``); any other ``$`` option is refused, and so is an option sent as ``%24filter`` (one source
  reports HTTP 400 for it);
- ``+`` in a query value is a space (ASP.NET's reading of a query string).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from reconciler.site.adminservice.wire import BOOLEAN, INT32, INT64, WireClass

#: The body a site sends when an authenticated user is not allowed the query (note the two spaces).
ACCESS_DENIED = "Access denied  WMI QUERY: "


class ODataError(Exception):
    """An error answered with an OData error body ``{"error": {"code": "<status>", "message": …}}``."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": {"code": str(self.status), "message": self.message}}


class BadRequest(ODataError):
    status = 400


class NotFound(ODataError):
    status = 404


class SiteRefusal(ODataError):
    """The site refused the operation (a WMI provider failure surfaces as HTTP 500)."""

    status = 500


# -- routes ---------------------------------------------------------------------------------------------------

KeyValue = str | int


@dataclass(frozen=True)
class Route:
    """One request path under ``/AdminService/wmi/``."""

    kind: str  # "metadata", "service", "collection", "entity", "static", "bound"
    class_name: str = ""
    key: tuple[tuple[str | None, KeyValue], ...] = ()
    method: str = ""


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _literal(text: str, pos: int) -> tuple[KeyValue, int]:
    if text.startswith("'", pos):
        out, i = [], pos + 1
        while i < len(text):
            if text[i] == "'":
                if text.startswith("''", i):
                    out.append("'")
                    i += 2
                    continue
                return "".join(out), i + 1
            out.append(text[i])
            i += 1
        raise BadRequest("a quoted key value is not closed")
    match = re.compile(r"-?\d+").match(text, pos)
    if not match:
        raise BadRequest(f"key value at {text[pos:pos + 20]!r} is neither a quoted string nor a number")
    return int(match.group()), match.end()


def _keys(text: str, pos: int) -> tuple[tuple[tuple[str | None, KeyValue], ...], int]:
    """The key inside ``( … )`` starting at ``pos`` (just after ``(``); returns it and the position after ``)``."""
    pairs: list[tuple[str | None, KeyValue]] = []
    while True:
        name = None
        match = _IDENT.match(text, pos)
        if match and text.startswith("=", match.end()):
            name, pos = match.group(), match.end() + 1
        value, pos = _literal(text, pos)
        pairs.append((name, value))
        if text.startswith(")", pos):
            return tuple(pairs), pos + 1
        if not text.startswith(",", pos):
            raise BadRequest("a key must be ('text'), (number) or (Name=value,…)")
        pos += 1


def parse_route(rest: str) -> Route:
    """The route of a path after ``/AdminService/wmi/`` (percent-encoded as received)."""
    text = unquote(rest)
    if text in ("", "/"):
        return Route("service")
    if text == "$metadata":
        return Route("metadata")
    match = _IDENT.match(text)
    if not match:
        raise NotFound(f"no resource at wmi/{text[:60]}")
    name, pos = match.group(), match.end()
    if pos == len(text):
        return Route("collection", name)
    if text[pos] == "." and _IDENT.fullmatch(text, pos + 1):
        return Route("static", name, method=text[pos + 1:])
    if text[pos] != "(":
        raise NotFound(f"no resource at wmi/{text[:60]}")
    key, pos = _keys(text, pos + 1)
    if pos == len(text):
        return Route("entity", name, key)
    bound = re.compile(r"/AdminService\.([A-Za-z_][A-Za-z0-9_]*)").fullmatch(text, pos)
    if bound:
        return Route("bound", name, key, bound.group(1))
    raise NotFound(f"no resource at wmi/{text[:60]}")


def key_dict(wire_class: WireClass, key: tuple[tuple[str | None, KeyValue], ...]) -> dict[str, KeyValue]:
    """The key of a route by property name, typed as the class declares it; 400 when it does not fit."""
    if len(key) != len(wire_class.key):
        raise BadRequest(f"{wire_class.name} has the key ({', '.join(wire_class.key)})")
    if len(key) == 1 and key[0][0] is None:
        key = ((wire_class.key[0], key[0][1]),)
    named = {name: value for name, value in key if name is not None}
    if set(named) != set(wire_class.key):
        raise BadRequest(f"{wire_class.name} has the key ({', '.join(wire_class.key)})")
    for name, value in named.items():
        if wire_class.numeric_key(name) != isinstance(value, int):
            kind = "a bare number" if wire_class.numeric_key(name) else "a quoted string"
            raise BadRequest(f"the key {name} of {wire_class.name} is {kind}")
    return named


# -- query options --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Eq:
    prop: str
    value: Any


@dataclass(frozen=True)
class StartsWith:
    prop: str
    prefix: str
    expected: bool


@dataclass(frozen=True)
class And:
    left: Any
    right: Any


@dataclass(frozen=True)
class Query:
    filter: Any = None
    select: tuple[str, ...] | None = None
    top: int | None = None
    skip: int = 0

    def equalities(self) -> dict[str, Any]:
        """The ``Name eq value`` terms joined by ``and`` at the top of the filter (to look things up by them)."""
        found: dict[str, Any] = {}
        stack = [self.filter]
        while stack:
            node = stack.pop()
            if isinstance(node, And):
                stack += [node.left, node.right]
            elif isinstance(node, Eq):
                found[node.prop] = node.value
        return found


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<sym>[(),]))")


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise BadRequest(f"$filter cannot be read at {text[pos:pos + 20]!r}")
        pos = match.end()
        if match.group("str") is not None:
            out.append(("str", match.group("str")[1:-1].replace("''", "'")))
        elif match.group("num") is not None:
            out.append(("num", int(match.group("num"))))
        elif match.group("word") is not None:
            out.append(("word", match.group("word")))
        else:
            out.append(("sym", match.group("sym")))
    return out


class _FilterParser:
    _VALUES = {"true": True, "false": False}

    def __init__(self, text: str, wire_class: WireClass) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.wire_class = wire_class

    def parse(self) -> Any:
        node = self._and()
        if self.pos != len(self.tokens):
            raise BadRequest(f"$filter: unexpected {self.tokens[self.pos][1]!r}; this site supports eq, and and "
                             "startswith(Name,'x') eq true")
        return node

    def _peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, kind: str, value: Any = None) -> Any:
        token = self._peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            raise BadRequest(f"$filter: expected {value or kind} at token {self.pos + 1}")
        self.pos += 1
        return token[1]

    def _and(self) -> Any:
        node = self._primary()
        while self._peek() == ("word", "and"):
            self.pos += 1
            node = And(node, self._primary())
        return node

    def _property(self, name: str) -> str:
        prop = self.wire_class.prop(name)
        if prop is None or prop.lazy:
            raise BadRequest(f"$filter: {self.wire_class.name} has no property {name!r} to filter on")
        return name

    def _value(self, prop: str) -> Any:
        kind, value = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", None)
        edm = self.wire_class.prop(prop).edm  # type: ignore[union-attr]
        self.pos += 1
        if kind == "word" and value in self._VALUES and edm == BOOLEAN:
            return self._VALUES[value]
        if kind == "num" and edm in (INT64, INT32):
            return value
        if kind == "str" and edm not in (INT64, INT32, BOOLEAN):
            return value
        raise BadRequest(f"$filter: {prop} cannot be compared with {value!r}")

    def _primary(self) -> Any:
        token = self._peek()
        if token == ("sym", "("):
            self.pos += 1
            node = self._and()
            self._take("sym", ")")
            return node
        if token == ("word", "startswith"):
            self.pos += 1
            self._take("sym", "(")
            prop = self._property(self._take("word"))
            self._take("sym", ",")
            prefix = self._take("str")
            self._take("sym", ")")
            self._take("word", "eq")
            expected = self._take("word")
            if expected not in self._VALUES:
                raise BadRequest("$filter: startswith(…) is compared with true or false")
            return StartsWith(prop, prefix, self._VALUES[expected])
        prop = self._property(self._take("word"))
        operator = self._take("word")
        if operator != "eq":
            raise BadRequest(f"$filter: operator {operator!r} is not supported; this site supports eq, and and "
                             "startswith")
        return Eq(prop, self._value(prop))


def parse_query(raw: str, wire_class: WireClass) -> Query:
    """``$filter``, ``$select``, ``$top`` and ``$skip`` from a raw query string; 400 for anything else with ``$``."""
    options: dict[str, str] = {}
    for part in raw.split("&") if raw else ():
        name, _, value = part.partition("=")
        if name.lower().startswith("%24"):
            raise BadRequest(f"query option {name[:20]!r}: send '$' literally, not percent-encoded")
        if not name.startswith("$"):
            continue
        if name in options:
            raise BadRequest(f"query option {name} is given twice")
        options[name] = unquote_plus(value)
    unknown = sorted(set(options) - {"$filter", "$select", "$top", "$skip"})
    if unknown:
        raise BadRequest(f"query option {unknown[0]} is not supported by the wmi route")
    select = None
    if "$select" in options:
        select = tuple(name.strip() for name in options["$select"].split(","))
        for name in select:
            if wire_class.prop(name) is None:
                raise BadRequest(f"$select: {wire_class.name} has no property {name!r}")
    numbers = {}
    for name in ("$top", "$skip"):
        if name in options:
            if not options[name].isdigit():
                raise BadRequest(f"{name} must be a whole number, not {options[name][:20]!r}")
            numbers[name] = int(options[name])
    flt = _FilterParser(options["$filter"], wire_class).parse() if "$filter" in options else None
    return Query(flt, select, numbers.get("$top"), numbers.get("$skip", 0))


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def matches(node: Any, row: Mapping[str, Any]) -> bool:
    if node is None:
        return True
    if isinstance(node, And):
        return matches(node.left, row) and matches(node.right, row)
    if isinstance(node, StartsWith):
        value = row.get(node.prop)
        return (isinstance(value, str) and value.casefold().startswith(node.prefix.casefold())) == node.expected
    return _fold(row.get(node.prop)) == _fold(node.value)


def select_rows(rows: Iterable[Mapping[str, Any]], query: Query) -> list[Mapping[str, Any]]:
    """Rows matching the filter, in key order as given, then ``$skip``/``$top``."""
    found = [row for row in rows if matches(query.filter, row)]
    found = found[query.skip:]
    return found if query.top is None else found[:query.top]
