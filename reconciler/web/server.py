"""Serving the web view over HTTP: on a listener of its own (``reconcile serve``), or on the controller's
``--listen`` beside ``/healthz``, ``/readyz``, ``/status`` and ``/metrics`` (:func:`dispatch`)."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.web.app import SECURITY_HEADERS, Response, WebApp

log = logging.getLogger("reconciler.web")

#: The largest request body read (the sign-in form): anything larger is refused unread.
MAX_BODY = 4096


def dispatch(app: WebApp, handler: BaseHTTPRequestHandler) -> None:
    """Answer one request of ``handler`` (GET or POST) from ``app``."""
    body = b""
    if handler.command == "POST":
        length = handler.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            send(handler, Response(413, b"request body too large\n", "text/plain; charset=utf-8"))
            return
        body = handler.rfile.read(int(length))
    try:
        response = app.handle(handler.command, handler.path, handler.headers, body)
    except Exception:  # a bug: one request fails, in the log with its trace; the view goes on serving
        log.exception("web view: %s %s", handler.command, handler.path[:200])
        response = Response(500, b"internal error: the trace is in the log\n", "text/plain; charset=utf-8")
    send(handler, response)


def send(handler: BaseHTTPRequestHandler, response: Response) -> None:
    handler.send_response(response.status)
    handler.send_header("Content-Type", response.content_type)
    handler.send_header("Content-Length", str(len(response.body)))
    for name, value in (*SECURITY_HEADERS, *response.headers):
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(response.body)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class WebServer:
    """The view on a listener of its own, answered by threads; :meth:`close` stops it."""

    def __init__(self, app: WebApp, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            server_version = "reconcile"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                dispatch(app, self)

            def do_POST(self) -> None:
                dispatch(app, self)

        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        self.httpd = server_class((host, port), Handler)
        self.httpd.daemon_threads = True
        # Polled every 50 ms for a shutdown request, so stopping takes no longer than that.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="web-server", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
