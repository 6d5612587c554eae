"""One HTTP connection to ``reconcile site serve``: authentication, routing, and answers shaped as a site's.

Statuses and bodies (CONFIGMGR.md, section AdminService): 401 with an empty body and ``WWW-Authenticate:
Negotiate`` until a handshake completes; an authenticated user who is no administrator gets **404** with
``{"error": {"code": "404", "message": "Access denied  WMI QUERY: "}}``; a missing object 404; a request the
server cannot read 400; a refusal of the site 500 (a busy site 503); all with an OData error body. A path
outside ``/AdminService/`` gets an HTML 404 page, as a host without the AdminService answers. Lists and gets by
key answer ``{"@odata.context", "value": [...]}``; a create 201 with the object and a ``…/$entity`` context;
a method 201 with ``#__PARAMETERS`` and its out-parameters; a delete 204.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from reconciler.site.adminservice import wire
from reconciler.site.errors import SiteError, TransientSiteError
from reconciler.site.serve import writes
from reconciler.site.serve.auth import ConnectionAuth, Outcome
from reconciler.site.serve.metadata import offered
from reconciler.site.serve.odata import ACCESS_DENIED, BadRequest, NotFound, ODataError, Route, parse_query, parse_route

if TYPE_CHECKING:
    from reconciler.site.serve.server import AdminServiceServer

log = logging.getLogger("reconciler.site.serve")

PREFIX = "/AdminService/"
WMI = "/AdminService/wmi/"
JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
#: Largest request body read (a 2 MB sequence, escaped into JSON, fits many times over).
MAX_BODY = 32 * 1024 * 1024
#: Seconds an idle keep-alive connection is kept.
IDLE_TIMEOUT = 60
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")
_IIS_404 = (b"<!DOCTYPE html><html><head><title>404 - File or directory not found.</title></head><body>"
            b"<h2>404 - File or directory not found.</h2><h3>The resource you are looking for might have been removed,"
            b" had its name changed, or is temporarily unavailable.</h3></body></html>")


class _Reply(Exception):
    def __init__(self, status: int, body: bytes = b"", content_type: str = JSON_TYPE, reason: str = "") -> None:
        super().__init__(status)
        self.status, self.body, self.content_type, self.reason = status, body, content_type, reason


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class AdminServiceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "reconcile-site-serve"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    wbufsize = 64 * 1024  # headers and body leave in one write (flushed at the end of each answer)
    server: Any

    def setup(self) -> None:
        super().setup()
        self.app: AdminServiceServer = self.server.app
        self.auth = ConnectionAuth(self.app.authenticator)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log records every request."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # -- one request ------------------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        user, mutual = "", None
        try:
            body = self._read_body()
            if not path.startswith(PREFIX):
                raise _Reply(404, _IIS_404, "text/html", "no AdminService here")
            outcome = self.auth.process(self.headers.get("Authorization"))
            if outcome.principal is None:
                raise self._unauthorized(outcome)
            user, mutual = outcome.principal, outcome.token
            if outcome.account is None or not outcome.account.admin:
                raise _Reply(404, _json(ODataError(ACCESS_DENIED, 404).body()), reason="not an administrator")
            status, data, content_type = self._route(method, path, query, body)
            reply = _Reply(status, data, content_type)
        except _Reply as answer:
            reply = answer
        except ODataError as exc:
            reply = _Reply(exc.status, _json(exc.body()), reason=exc.message[:200])
        except TransientSiteError as exc:
            reply = _Reply(503, _json(ODataError(str(exc), 503).body()), reason=str(exc)[:200])
        except SiteError as exc:
            reply = _Reply(500, _json(ODataError(str(exc), 500).body()), reason=str(exc)[:200])
        except Exception:  # a bug in the server: said as a 500, its trace in the server's log
            log.exception("site serve: %s %s failed", method, path[:200])
            reply = _Reply(500, _json(ODataError("internal error in reconcile site serve", 500).body()),
                           reason="internal error")
        # Logged before the answer leaves: a client that has its answer finds its request in the log.
        self.app.request_log.add(method, path, query, reply.status, started, user, reply.reason)
        self._send(reply, mutual)

    def _unauthorized(self, outcome: Outcome) -> _Reply:
        reply = _Reply(401, b"", reason=outcome.reason)
        challenge = "Negotiate" + (f" {base64.b64encode(outcome.token).decode()}" if outcome.token else "")
        reply.challenge = challenge  # type: ignore[attr-defined]
        return reply

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise _Reply(400, _json(BadRequest("send the body with Content-Length").body()), reason="chunked body")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise _Reply(400, _json(BadRequest("Content-Length is not a number").body()), reason="bad length") from None
        if length > MAX_BODY or length < 0:
            self.close_connection = True
            raise _Reply(413, _json(ODataError("the request body is too large", 413).body()), reason="body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, reply: _Reply, mutual: bytes | None) -> None:
        self.send_response(reply.status)
        challenge = getattr(reply, "challenge", None)
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        elif mutual:
            self.send_header("WWW-Authenticate", "Negotiate " + base64.b64encode(mutual).decode())
        if reply.body:
            self.send_header("Content-Type", reply.content_type)
        if reply.content_type == JSON_TYPE and reply.status != 401:
            self.send_header("OData-Version", "4.0")
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)
        self.wfile.flush()

    # -- routing ----------------------------------------------------------------------------------------------

    def _base(self) -> str:
        host = self.headers.get("Host") or ""
        if not _HOST.fullmatch(host):
            host = f"{self.app.host}:{self.app.port}"
        return f"https://{host}{WMI}"

    def _route(self, method: str, path: str, query: str, raw: bytes) -> tuple[int, bytes, str]:
        if not path.startswith(WMI):
            raise NotFound(f"no resource at {path[:80]}")
        route = parse_route(path[len(WMI):])
        base = self._base()
        if route.kind == "metadata":
            self._only(method, "GET")
            return 200, self.app.metadata.encode("utf-8"), "application/xml"
        if route.kind == "service":
            self._only(method, "GET")
            sets = [{"name": n, "kind": "EntitySet", "url": n} for n, c in wire.CLASSES.items() if not c.embedded]
            return 200, _json({"@odata.context": base + "$metadata", "value": sets}), JSON_TYPE
        wire_class = wire.CLASSES.get(route.class_name)
        if wire_class is None or wire_class.embedded:
            raise NotFound(f"wmi/{route.class_name[:60]} is not a class of this site")
        if route.kind in ("static", "bound"):
            return self._method(method, route, base, raw)
        backend = self.app.backend
        name = wire_class.name
        if route.kind == "collection":
            if method == "GET":
                options = parse_query(query, wire_class)
                rows = backend.run(lambda: backend.query(name, options))
                values = [self._shape(wire_class, r, options.select, True) for r in rows]
                return 200, _json({"@odata.context": self._context(base, name, options.select),
                                   "value": values}), JSON_TYPE
            self._only(method, "POST")
            create = writes.CREATE.get(name)
            if create is None:
                raise BadRequest(f"{name} cannot be created through this server")
            body = self._object(raw)
            row = backend.run(lambda: create(backend, body))
            return 201, _json({"@odata.context": f"{base}$metadata#{name}/$entity",
                               **self._shape(wire_class, row, None, False)}), JSON_TYPE
        if method == "GET":
            options = parse_query(query, wire_class)
            row = backend.run(lambda: backend.get(name, route.key))
            if row is None:
                raise NotFound(f"{name} {self._key_text(route)} does not exist")
            return 200, _json({"@odata.context": self._context(base, name, options.select),
                               "value": [self._shape(wire_class, row, options.select, False)]}), JSON_TYPE
        if method == "PUT":
            update = writes.UPDATE.get(name)
            if update is None:
                raise BadRequest(f"{name} cannot be changed through this server")
            body = self._object(raw)
            row = backend.run(lambda: update(backend, route.key, body))
            return 200, _json({"@odata.context": f"{base}$metadata#{name}/$entity",
                               **self._shape(wire_class, row, None, False)}), JSON_TYPE
        if method == "DELETE":
            delete = writes.DELETE.get(name)
            if delete is None:
                raise BadRequest(f"{name} cannot be deleted through this server")
            backend.run(lambda: delete(backend, route.key))
            return 204, b"", JSON_TYPE
        raise ODataError(f"{method} is not supported; update with PUT", 405)

    def _method(self, method: str, route: Route, base: str, raw: bytes) -> tuple[int, bytes, str]:
        wire_class = wire.CLASSES[route.class_name]
        bound = route.kind == "bound"
        if not offered(wire_class, route.method, bound, self.app.hide):
            raise NotFound(f"{route.class_name}.{route.method[:60]} is not offered by this site")
        self._only(method, "POST")
        body = self._object(raw) if raw.strip() else {}
        backend = self.app.backend
        if bound:
            fn = writes.BOUND[(route.class_name, route.method)]
            out = backend.run(lambda: fn(backend, route.key, body))
        else:
            static = writes.STATIC[(route.class_name, route.method)]
            out = backend.run(lambda: static(backend, body))
        return 201, _json({"@odata.context": base + "$metadata#__PARAMETERS", **out}), JSON_TYPE

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed:
            raise ODataError(f"{method} is not supported here; use {allowed}", 405)

    @staticmethod
    def _object(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    @staticmethod
    def _context(base: str, name: str, select: tuple[str, ...] | None) -> str:
        return f"{base}$metadata#{name}" + (f"({','.join(select)})" if select else "")

    @staticmethod
    def _key_text(route: Route) -> str:
        return ",".join(str(value) for _, value in route.key)[:80]

    def _shape(self, wire_class: wire.WireClass, row: dict[str, Any], select: tuple[str, ...] | None,
               listing: bool) -> dict[str, Any]:
        """A row as sent: lazy properties only from a get by key; ``$select`` keeps only what it names and drops
        the system properties; a full row carries ``@odata.etag`` and the ``__*`` properties."""
        lazy = set(wire_class.lazy) if listing else set()
        if select is not None:
            return {name: row.get(name) for name in select if name not in lazy}
        shaped = wire.system_properties(wire_class, row, self.app.backend.site_code, self.app.server_name)
        shaped.update({name: row.get(name) for name in (p.name for p in wire_class.properties) if name not in lazy})
        return shaped
