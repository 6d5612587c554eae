"""The web view's pages: routes, server-side rendering with Jinja2 (autoescape on), and the headers every
answer carries.

Every page is read-only and made from one :class:`~reconciler.web.estate.Snapshot`. Every text that came
from a manifest or the site goes through Jinja2's escaping (autoescape is on for every template, and no
template marks a value safe), and the Content-Security-Policy allows scripts, styles and requests from this
origin only, without ``unsafe-inline``: a console name such as ``<script>…`` is text, and could not run if it
were not. Links are relative, so the view works at the root of a host or under a path of a reverse proxy.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from reconciler.render.plan import render_text
from reconciler.web.access import COOKIE, Access
from reconciler.web.details import Line, line_mark, masked, object_page, value_text
from reconciler.web.estate import STATUSES, Row, Snapshot

#: Content-Security-Policy of every answer: this origin only, no inline script or style, no frames.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
#: Rows per page of the overview; "all" sends every row (the benchmark renders 10,000 in well under a second).
PAGE_SIZES = (50, 200, 1000)
DEFAULT_PAGE_SIZE = 200
#: How often an open page asks whether a new snapshot is there (milliseconds).
POLL_MS = 2000
_MAX_QUERY = 200
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}
COLUMNS = {
    "kind": lambda r: (r.kind, r.name),
    "name": lambda r: (r.name, r.kind),
    "console": lambda r: (r.console.casefold(), r.kind, r.name),
    "id": lambda r: (r.live_id, r.kind, r.name),
    "status": lambda r: (STATUSES.index(r.status) if r.status in STATUSES else len(STATUSES), r.kind, r.name),
    "changed": lambda r: (r.changed_at or 0.0, r.kind, r.name),
    "commit": lambda r: (r.commit, r.kind, r.name),
}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def when(epoch: Any) -> str:
    if not epoch:
        return "—"
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(sha: Any) -> str:
    return str(sha)[:12] if sha else "—"


def seconds(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("reconciler.web", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, short=short, seconds=seconds, u=lambda s: quote(str(s), safe=""),
                       text=value_text, masked=lambda v: json.dumps(masked(v), ensure_ascii=False, default=str))
    return env


def _static() -> dict[str, bytes]:
    folder = resources.files("reconciler.web") / "static"
    return {entry.name: entry.read_bytes() for entry in folder.iterdir()
            if entry.is_file() and any(entry.name.endswith(s) for s in _STATIC_TYPES)}


class WebApp:
    """Answers the view's requests from the latest snapshot. ``snapshot`` returns it (None before the first)."""

    def __init__(self, snapshot: Callable[[], Snapshot | None], access: Access | None = None, *,
                 served_by: str = "reconcile serve", poll_ms: int = POLL_MS) -> None:
        self.snapshot = snapshot
        self.access = access or Access()
        self.served_by = served_by
        self.poll_ms = poll_ms
        self.env = _environment()
        self.static = _static()

    # -- dispatch ------------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        parts = urlsplit(target)
        path = parts.path
        try:
            query = {k: v[0] for k, v in parse_qs(parts.query, max_num_fields=20).items() if v}
        except ValueError:
            return self._plain(400, "too many query parameters\n")
        root = "./" if path.count("/") <= 1 else "../" * (path.count("/") - 1)
        if path == "/login":
            return self._login(method, root, body, headers)
        if not self.access.allows(headers):
            return self._denied(root, path, headers)
        if method != "GET":
            return self._plain(405, "read-only: only GET is served\n", [("Allow", "GET")])
        if path.startswith("/static/"):
            return self._asset(path.removeprefix("/static/"))
        snapshot = self.snapshot()
        if path == "/api/generation":
            body_json = {"generation": snapshot.generation if snapshot else 0}
            return Response(200, json.dumps(body_json).encode(), "application/json",
                            [("Cache-Control", "no-store")])
        if snapshot is None:
            return self._page(503, "wait.html", root, None, title="Starting", headers=[("Retry-After", "2")])
        if path in ("/", ""):
            return self._page(200, "overview.html", root, snapshot, title="Overview", **self._overview(snapshot,
                                                                                                      query))
        if path == "/plan":
            return self._page(200, "plan.html", root, snapshot, title="Plan", **self._plan(snapshot))
        if path == "/history":
            return self._page(200, "history.html", root, snapshot, title="History",
                              history=snapshot.history)
        if path.startswith("/objects/"):
            kind, _, name = path.removeprefix("/objects/").partition("/")
            page = object_page(snapshot, f"{kind}/{name}") if kind and name and "/" not in name else None
            if page is not None:
                return self._page(200, "object.html", root, snapshot, title=f"{kind}/{name}", page=page)
        return self._page(404, "missing.html", root, snapshot, title="Not found", path=path[:200])

    # -- pages ---------------------------------------------------------------------------------------------

    def _page(self, code: int, template: str, root: str, snapshot: Snapshot | None, *, title: str,
              headers: list[tuple[str, str]] | None = None, **context: Any) -> Response:
        html = self.env.get_template(template).render(
            root=root, snapshot=snapshot, title=title, served_by=self.served_by, poll_ms=self.poll_ms,
            statuses=STATUSES, now=time.time(), **context)
        return Response(code, html.encode("utf-8"), headers=[("Cache-Control", "no-store"), *(headers or [])])

    def _overview(self, snapshot: Snapshot, query: dict[str, str]) -> dict[str, Any]:
        kind = query.get("kind", "")
        kind = kind if kind in snapshot.kinds else ""
        status = query.get("status", "")
        status = status if status in STATUSES else ""
        text = query.get("q", "")[:_MAX_QUERY]
        sort = query.get("sort", "")
        sort = sort if sort in COLUMNS else ""
        descending = query.get("dir") == "desc"
        per_text = query.get("per", "")
        per = 0 if per_text == "all" else int(per_text) if per_text in {str(p) for p in PAGE_SIZES} \
            else DEFAULT_PAGE_SIZE
        rows: list[Row] | tuple[Row, ...] = snapshot.rows
        if kind:
            rows = [r for r in rows if r.kind == kind]
        if status:
            rows = [r for r in rows if r.status == status]
        if text:
            folded = text.casefold()
            rows = [r for r in rows if folded in f"{r.kind}/{r.name}\0{r.console}\0{r.live_id}\0{r.reason}".casefold()]
        if sort:
            rows = sorted(rows, key=COLUMNS[sort], reverse=descending)
        total = len(rows)
        pages = max(1, -(-total // per)) if per else 1
        page_text = query.get("page", "1")
        page = min(max(int(page_text), 1), pages) if page_text.isdigit() and len(page_text) <= 9 else 1
        shown = rows[(page - 1) * per: page * per] if per else rows
        kept = {"kind": kind, "status": status, "q": text, "sort": sort, "dir": "desc" if descending else "",
                "per": per_text if per_text == "all" or per != DEFAULT_PAGE_SIZE else ""}

        def link(**changes: Any) -> str:
            merged = {**kept, **changes}
            return "?" + urlencode({k: v for k, v in merged.items() if v not in ("", None, 1)})

        sort_links = {col: link(sort=col, dir="" if sort == col and descending else
                                ("desc" if sort == col else ""), page=1) for col in COLUMNS}
        return {"rows": shown, "total": total, "kind": kind, "chosen": status, "q": text, "sort": sort,
                "descending": descending, "page": page, "pages": pages, "per": per_text or str(DEFAULT_PAGE_SIZE),
                "page_sizes": [str(s) for s in PAGE_SIZES] + ["all"], "sort_links": sort_links,
                "prev_link": link(page=page - 1) if page > 1 else None,
                "next_link": link(page=page + 1) if page < pages else None}

    def _plan(self, snapshot: Snapshot) -> dict[str, Any]:
        lines: list[Line] = []
        if snapshot.plan is not None:
            out = io.StringIO()
            render_text(snapshot.plan, out, color=False)
            lines = [Line(text, _plan_mark(text)) for text in out.getvalue().splitlines()]
        return {"lines": lines, "plan": snapshot.plan, "findings": snapshot.findings}

    # -- assets, sign-in, refusals -------------------------------------------------------------------------

    def _asset(self, name: str) -> Response:
        data = self.static.get(name)
        if data is None:
            return self._plain(404, "not found\n")
        suffix = name[name.rfind("."):]
        return Response(200, data, _STATIC_TYPES[suffix], [("Cache-Control", "no-cache")])

    def _plain(self, status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
        return Response(status, text.encode("utf-8"), "text/plain; charset=utf-8", headers or [])

    def _denied(self, root: str, path: str, headers: Mapping[str, str]) -> Response:
        if self.access.refused:
            return self._page(403, "refused.html", root, None, title="Web view off")
        if path.startswith(("/api/", "/static/")) or "text/html" not in (headers.get("Accept") or "text/html"):
            return self._plain(401, "a token is needed (Authorization: Bearer TOKEN)\n",
                               [("WWW-Authenticate", 'Bearer realm="reconcile"')])
        return self._page(401, "login.html", root, None, title="Sign in", failed=False,
                          headers=[("WWW-Authenticate", 'Bearer realm="reconcile"')])

    def _login(self, method: str, root: str, body: bytes, headers: Mapping[str, str]) -> Response:
        if self.access.refused:
            return self._page(403, "refused.html", root, None, title="Web view off")
        if self.access.token is None:
            return Response(303, b"", headers=[("Location", root)])
        if method == "GET":
            return self._page(200, "login.html", root, None, title="Sign in", failed=False)
        if method != "POST":
            return self._plain(405, "GET or POST\n", [("Allow", "GET, POST")])
        given = (parse_qs(body.decode("utf-8", "replace"), max_num_fields=5).get("token") or [""])[0]
        if not self.access.check(given):
            return self._page(401, "login.html", root, None, title="Sign in", failed=True)
        jar: SimpleCookie = SimpleCookie()
        jar[COOKIE] = given
        jar[COOKIE].update({"path": "/", "httponly": True, "samesite": "Strict"})
        if (headers.get("X-Forwarded-Proto") or "").lower() == "https":
            jar[COOKIE]["secure"] = True
        return Response(303, b"", headers=[("Location", root), ("Set-Cookie", jar[COOKIE].OutputString())])


def _plan_mark(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith("✗"):
        return "remove"
    if stripped.startswith("!"):
        return "change"
    if stripped.startswith("⚠"):
        return "remove"
    return line_mark(text) if text.startswith("  ") else ""
