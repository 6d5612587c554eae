"""Prometheus metrics and the controller's HTTP endpoints (/healthz, /readyz, /status, /metrics)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ticks = Counter("reconcile_ticks", "Controller ticks by outcome.", ["outcome"], registry=self.registry)
        self.duration = Histogram("reconcile_tick_duration_seconds", "Duration of controller ticks.",
                                  registry=self.registry)
        self.actions = Counter("reconcile_actions", "Applied actions by type and outcome.", ["verb", "outcome"],
                               registry=self.registry)
        self.drifted = Gauge("reconcile_drifted_objects", "Objects whose live state moved away from Git.",
                             registry=self.registry)
        self.blocked = Gauge("reconcile_blocked_objects", "Objects with blocked items.", registry=self.registry)
        self.paused = Gauge("reconcile_paused", "1 while the controller is paused (it reports drift, applies nothing).",
                            registry=self.registry)
        self.last_success = Gauge("reconcile_last_success_timestamp_seconds",
                                  "Unix time of the last successful sync.", registry=self.registry)
        self.last: dict[str, Any] = {}
        self.lock = threading.Lock()

    def tick(self, result: Any) -> None:
        with self.lock:
            self.ticks.labels(result.outcome).inc()
            if result.outcome != "standby":
                self.paused.set(1 if result.paused else 0)
            self.duration.observe(result.duration)
            if result.objects:
                self.drifted.set(sum(1 for s in result.objects.values() if s == "drifted"))
                self.blocked.set(sum(1 for s in result.objects.values() if s == "blocked"))
            # A tick that reported drift without reverting it (--no-self-heal) did all it was asked to: a success.
            if result.outcome in ("ok", "skipped", "drift"):
                self.last_success.set(time.time())
            if result.outcome != "skipped":
                self.last = {**result.to_json(), "objects": result.objects or self.last.get("objects", {}),
                             "at": time.time()}

    def action(self, verb: str, outcome: str) -> None:
        with self.lock:
            self.actions.labels(verb, outcome).inc()

    def readiness(self) -> tuple[bool, str]:
        """Ready when the last tick reconciled (or, without self-heal, reported) the site.

        A standby is alive (/healthz) but not ready: it reconciles nothing while another writer holds the
        lease, so a load balancer or a rollout must not count it as serving.
        """
        with self.lock:
            outcome, error = self.last.get("outcome"), self.last.get("error")
        if outcome in ("ok", "drift"):
            return True, "ready"
        if outcome is None:
            return False, "not ready (no tick yet)"
        if outcome == "standby":
            return False, f"not ready (standby: {error or 'another writer holds the lease'})"
        return False, f"not ready (last tick: {outcome}" + (f": {error}" if error else "") + ")"

    def ready(self) -> bool:
        return self.readiness()[0]


def serve(metrics: Metrics, host: str, port: int, web: Any = None) -> ThreadingHTTPServer:
    """The listener: the probes and metrics here, every other path (the web view) to ``web`` when given (an object
    with ``dispatch(handler)``, :class:`reconciler.web.WebView`), else 404."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self.send(200, b"ok\n", "text/plain")
            elif self.path == "/readyz":
                ready, why = metrics.readiness()
                self.send(200 if ready else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
            elif self.path == "/status":
                self.send(200, json.dumps(metrics.last, default=str).encode(), "application/json")
            elif self.path == "/metrics":
                self.send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif web is not None:
                web.dispatch(self)
            else:
                self.send(404, b"not found\n", "text/plain")

        def do_POST(self) -> None:  # the web view's sign-in form; nothing else takes a POST
            if web is not None:
                web.dispatch(self)
            else:
                self.send(404, b"not found\n", "text/plain")

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server
