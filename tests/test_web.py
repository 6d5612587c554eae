"""The web view over HTTP: every route, escaping, the security headers, the token rule, secrets, the plan's changes.

The view runs on a real listener on 127.0.0.1 over the example estate applied to an embedded site; the browser
itself is in test_web_browser.py.
"""

from __future__ import annotations

import ast
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import git
import httpx
import pytest

from reconciler.config import load_config, manifests_root
from reconciler.controller.metrics import Metrics
from reconciler.controller.metrics import serve as serve_metrics
from reconciler.diff.changes import PATH_SEPARATOR
from reconciler.site import open_site
from reconciler.web import Access, GitSource, WebAccessError, WebView, access_for, is_loopback, parse_listen
from reconciler.web.app import CSP
from reconciler.workspace import open_workspace
from tests.conftest import REPO, run_cli, wait_until
from tests.web_fixture import INSTALL, SECRET_VALUES, Estate, Served, copy_estate, make_estate

KINDS = ("TaskSequence", "TaskSequenceDeployment", "ContentDistribution", "CollectionVariables", "ComputerVariables")


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    return make_estate(tmp_path_factory.mktemp("estate"))


@pytest.fixture
def estate(applied: Estate, tmp_path: Path) -> Estate:
    return copy_estate(applied, tmp_path / "estate")


@pytest.fixture
def served(estate: Estate) -> Served:
    running = Served(estate.view())
    yield running
    running.close()


def _object_paths(served: Served) -> list[str]:
    page = served.get("/?per=all").text
    return sorted(set(re.findall(r'href="\./(objects/[A-Za-z]+/[a-z0-9-]+)"', page)))


def test_every_route_answers_with_the_security_headers(served: Served) -> None:
    objects = _object_paths(served)
    assert {p.split("/")[1] for p in objects} == set(KINDS)
    for path in ["/", "/plan", "/history", "/static/app.js", "/static/style.css", "/static/favicon.svg",
                 "/api/generation", *(f"/{p}" for p in objects)]:
        answer = served.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["Content-Security-Policy"] == CSP, path
        assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert served.get("/objects/TaskSequence/no-such-sequence").status_code == 404
    assert served.get("/static/../app.py").status_code == 404
    assert served.get("/nowhere").headers["Content-Security-Policy"] == CSP


def test_no_page_has_inline_script_or_style(served: Served) -> None:
    for path in ["/", "/plan", "/history", *(f"/{p}" for p in _object_paths(served))]:
        html = served.get(path).text
        assert re.findall(r"<script[^>]*>", html) == ['<script src="' + ("./" if path.count("/") <= 1 else "../../")
                                                      + 'static/app.js" defer>'], path
        assert " style=" not in html and "<style" not in html and " on" not in re.sub(r">[^<]*<", "><", html), path


def test_the_overview_lists_the_example_estate_with_statuses(served: Served) -> None:
    html = served.get("/").text
    rows = re.findall(r'<tr data-key="([^"]+)" data-status="([^"]+)">', html)
    assert len(rows) == 21 and {status for _, status in rows} == {"synced"}
    assert ("TaskSequence/windows-11-install", "synced") in rows
    assert "Windows 11 23H2 - Install to OSD Pilot" in html  # a deployment's console name
    assert re.search(r'<span class="n">21</span> synced', html)
    assert "no writer holds the lease" in html


def test_drift_on_the_site_shows_as_drifted_with_its_reason(estate: Estate) -> None:
    running = Served(estate.view(refresh=0.1))
    try:
        generation = running.view.refresher.generation
        with open_site(estate.site) as site:
            ts = next(t for t in site.read().task_sequences.values() if t.name == "Windows 11 23H2 - VHD")
            site.set_task_sequence_enabled(ts.id, not ts.enabled)
        assert running.view.refresher.wait_for(generation + 1, 20) is not None
        html = running.get("/?status=drifted").text
        assert re.findall(r'<tr data-key="([^"]+)" data-status="drifted">', html) == ["TaskSequence/windows-11-vhd"]
        assert "(drift)" in html
    finally:
        running.close()


def test_a_console_name_with_markup_is_text_on_every_page(estate: Estate) -> None:
    estate.edit(INSTALL, "name: Windows 11 23H2 - Install\n", 'name: "W11 <script>alert(1)</script> & <b>x</b>"\n')
    running = Served(estate.view())
    try:
        for path in ["/", "/plan", "/objects/TaskSequence/windows-11-install",
                     "/objects/TaskSequenceDeployment/windows-11-install-pilot"]:
            html = running.get(path).text
            assert "W11 &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;x&lt;/b&gt;" in html, path
            assert "<script>alert" not in html and "<b>x" not in html, path
    finally:
        running.close()


def test_the_object_page_shows_an_inserted_step_and_a_changed_condition(estate: Estate) -> None:
    estate.edit(INSTALL, "        - name: Enable BitLocker\n", "        - name: Set OSD tattoo\n"
                "          type: SetVariable\n          settings: {variableName: OSDTattoo, value: '2026-12'}\n"
                "        - name: Enable BitLocker\n")
    estate.edit(INSTALL, "{variable: {name: OSDBitLocker, operator: notEquals, value: \"false\"}}",
                "{variable: {name: OSDBitLocker, operator: equals, value: \"true\"}}")
    running = Served(estate.view())
    try:
        html = running.get("/objects/TaskSequence/windows-11-install").text
        assert (f"+ step (SetVariable) Configure{PATH_SEPARATOR}Set OSD tattoo: inserted after &#34;Record build "
                "date&#34; in &#34;Configure&#34;") in html
        assert "condition.variable.operator: &#34;notEquals&#34; → &#34;equals&#34;" in html
        assert re.search(r'class="node step mark-inserted">\s*<div class="step-head"><span class="node-name">'
                         r'Set OSD tattoo</span>', html)
        assert re.search(r'mark-changed">\s*<div class="step-head"><span class="node-name">Enable BitLocker', html)
        assert "if OSDBitLocker equals &#34;true&#34;" in html  # the condition in words
        overview = running.get("/").text
        assert re.search(r'data-key="TaskSequence/windows-11-install" data-status="out of sync"', overview)
    finally:
        running.close()


def test_disabled_steps_are_marked_and_groups_collapse(estate: Estate) -> None:
    estate.edit(INSTALL, "        - name: Install software updates\n",
                "        - name: Install software updates\n          disabled: true\n")
    running = Served(estate.view())
    try:
        html = running.get("/objects/TaskSequence/windows-11-install").text
        assert re.search(r'<li class="node step disabled mark-changed">\s*<div class="step-head"><span '
                         r'class="node-name">Install software updates</span> <span class="type">'
                         r'InstallSoftwareUpdates</span>\s*<span class="badge b-changed">changed</span>\s*'
                         r'<span class="badge b-disabled">disabled</span>', html)
        assert re.search(r'<li class="node group">\s*<details open>\s*<summary><span class="node-name">Configure'
                         r'</span> <span class="type">group</span>', html)
        assert "disabled: (none) → true" in html
    finally:
        running.close()


def test_filter_and_sort_on_the_server(served: Served) -> None:
    def keys(query: str) -> list[str]:
        return re.findall(r'<tr data-key="([^"]+)"', served.get(f"/?{query}").text)

    assert {k.split("/")[0] for k in keys("kind=TaskSequenceDeployment")} == {"TaskSequenceDeployment"}
    assert keys("q=pilot") == ["TaskSequenceDeployment/windows-11-install-pilot", "CollectionVariables/osd-pilot"]
    assert keys("q=PS100018") == ["TaskSequenceDeployment/windows-11-install-pilot"]
    names = [k.split("/")[1] for k in keys("sort=name&dir=desc&per=all")]
    assert names == sorted(names, reverse=True) and len(names) == 21
    assert keys("status=failed") == []
    assert keys("kind=<script>") == keys("")  # an unknown kind is no filter, never echoed
    paged = served.get("/?per=50&page=9").text
    assert "21 of 21 object(s)" in paged
    assert served.get("/?page=" + "9" * 5000 + "&per=" + "1" * 5000).status_code == 200
    assert served.get("/?" + "&".join(f"f{i}=1" for i in range(30))).status_code == 400


def test_pages_large_tables(estate: Estate) -> None:
    running = Served(estate.view())
    try:
        snapshot = running.view.refresher.snapshot
        assert snapshot is not None
        from dataclasses import replace

        from reconciler.web.estate import Row

        many = tuple(Row("TaskSequence", f"ts-{i:05d}", f"Sequence {i}", f"PS{i:06X}", "synced", "")
                     for i in range(1200))
        running.view.refresher.snapshot = replace(snapshot, rows=many, by_key={r.key: r for r in many})
        first = running.get("/").text
        assert len(re.findall(r"<tr data-key=", first)) == 200 and "page 1 of 6" in first
        assert 'rel="next"' in first and "?page=2" in first
        last = running.get("/?page=6").text
        assert re.findall(r'<tr data-key="([^"]+)"', last)[-1] == "TaskSequence/ts-01199"
        assert len(re.findall(r"<tr data-key=", running.get("/?per=all").text)) == 1200
    finally:
        running.close()


def test_no_secret_value_in_any_page_or_asset(estate: Estate) -> None:
    # A rotated secret behind an unchanged reference, and a step whose secret moved, both show in plans.
    estate.edit(INSTALL, "password: {valueFrom: {env: OSD_DOMAIN_JOIN_PASSWORD}}",
                "password: {valueFrom: {env: OSD_LOCAL_ADMIN_PASSWORD}}")
    running = Served(estate.view())
    try:
        paths = ["/", "/?per=all", "/plan", "/history", "/static/app.js", "/static/style.css",
                 "/static/favicon.svg", "/api/generation", *(f"/{p}" for p in _object_paths(running))]
        plan = running.get("/plan").text
        assert "(sensitive)" in plan
        for path in paths:
            body = running.get(path).text
            for secret in SECRET_VALUES:
                assert secret not in body, (path, secret[:4])
        step = running.get("/objects/TaskSequence/windows-11-install").text
        assert re.search(r"<dt>adminPassword</dt><dd>\(sensitive\)</dd>", step)
        variables = running.get("/objects/CollectionVariables/osd-pilot").text
        assert re.search(r"variables.OSDLocalAdminPassword</code></td><td>\(sensitive\)</td><td>\(sensitive\)</td>",
                         variables)
    finally:
        running.close()


def test_blocked_items_are_on_the_plan_page_with_file_and_line(estate: Estate) -> None:
    estate.edit("deployments/lab.yaml", "collection: {name: OSD Lab}", "collection: {name: No Such Collection}")
    running = Served(estate.view())
    try:
        plan = running.get("/plan").text
        assert re.search(r"manifests/deployments/lab\.yaml:\d+", plan)
        assert "No Such Collection" in plan
        overview = running.get("/?status=blocked").text
        assert re.findall(r'<tr data-key="([^"]+)" data-status="blocked">', overview)
    finally:
        running.close()


def test_invalid_manifests_block_every_object_and_are_listed(estate: Estate) -> None:
    estate.edit(INSTALL, "type: InstallOperatingSystem", "type: NotAType")
    running = Served(estate.view())
    try:
        overview = running.get("/").text
        statuses = set(re.findall(r'data-status="([^"]+)">\s*<td>', overview))
        assert statuses == {"blocked"}
        plan = running.get("/plan").text
        assert "manifests/task-sequences/windows-11-install.yaml:" in plan and "NotAType" in plan
    finally:
        running.close()


def test_history_lists_applies_and_each_object_its_actions(served: Served) -> None:
    history = served.get("/history").text
    assert re.search(r'<span class="outcome o-ok">ok</span>', history)
    page = served.get("/objects/TaskSequence/windows-11-install").text
    assert "CreateTaskSequence (new)" in page and 'o-applied">applied' in page


def test_the_web_view_writes_nothing(served: Served, estate: Estate) -> None:
    for path in ("/", "/plan", "/objects/TaskSequence/windows-11-install"):
        assert served.client.post(path, data={"a": "b"}).status_code == 405
        assert served.client.request("DELETE", path).status_code == 501
    with open_site(estate.site) as site:
        before = site.manageable()
    served.view.refresher.wake()
    assert served.view.refresher.wait_for(served.view.refresher.generation + 1, 20) is not None
    with open_site(estate.site) as site:
        assert site.manageable() == before


def test_the_web_package_never_applies_or_takes_the_lease() -> None:
    """Read-only by construction: nothing in reconciler/web imports the applier or the lease keeper."""
    for path in (REPO / "reconciler" / "web").glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m.startswith(("reconciler.apply", "reconciler.lease")) for m in modules), path
        assert "keeper" not in path.read_text().replace("no keeper", ""), path


# -- the token rule ---------------------------------------------------------------------------------------


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "osd.corp.example.com", ""))
    assert parse_listen("8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9") == ("::1", 9)
    with pytest.raises(WebAccessError, match="HOST:PORT"):
        parse_listen("127.0.0.1:http")


def test_another_address_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILE_WEB_TOKEN", raising=False)
    with pytest.raises(WebAccessError, match="not a loopback address"):
        access_for("0.0.0.0", None, strict=True)
    assert access_for("0.0.0.0", None, strict=False).refused
    assert access_for("127.0.0.1", None, strict=True) == Access()
    with pytest.raises(WebAccessError, match="at least 16"):
        access_for("0.0.0.0", "short", strict=True)
    monkeypatch.setenv("RECONCILE_WEB_TOKEN", "t" * 32)
    assert access_for("0.0.0.0", None, strict=True).token == "t" * 32


def test_serve_refuses_another_address_without_a_token(tmp_path: Path) -> None:
    done = run_cli("serve", "--listen", "0.0.0.0:0", cwd=tmp_path, env={"RECONCILE_WEB_TOKEN": None})
    assert done.returncode == 1
    assert done.stderr.startswith("error: 0.0.0.0 is not a loopback address: the web view there needs a token")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".reconcile").exists()  # refused before opening anything


def test_with_a_token_only_its_holder_reads(estate: Estate) -> None:
    token = "s3cret-token-" + "x" * 20
    running = Served(estate.view(access=Access(token=token)))
    try:
        page = running.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 401 and 'name="token"' in page.text and token not in page.text
        assert page.headers["WWW-Authenticate"].startswith("Bearer")
        assert page.headers["Content-Security-Policy"] == CSP
        assert running.get("/api/generation").status_code == 401
        assert running.get("/static/app.js").status_code == 401
        assert running.get("/", headers={"Authorization": "Bearer wrong-" + "x" * 20}).status_code == 401
        assert running.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        with httpx.Client(base_url=running.url, cookies={"reconcile_web": token}) as holder:
            assert holder.get("/plan").status_code == 200
        with httpx.Client(base_url=running.url, cookies={"reconcile_web": "nope"}) as stranger:
            assert stranger.get("/plan").status_code == 401
        assert running.client.post("/login", data={"token": "wrong"}).status_code == 401
        signed = running.client.post("/login", data={"token": token})
        assert signed.status_code == 303 and signed.headers["Location"] == "./"
        cookie = signed.headers["Set-Cookie"]
        assert cookie.startswith(f"reconcile_web={token}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert running.client.get("/history").status_code == 200  # the client keeps the cookie it was given
        big = running.client.post("/login", content=b"token=" + b"x" * 10_000,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert big.status_code == 413
    finally:
        running.close()


def test_the_controller_listener_serves_probes_and_the_view_together(served: Served) -> None:
    metrics = Metrics()
    view = served.view
    server = serve_metrics(metrics, "127.0.0.1", 0, web=view)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(f"{base}/healthz").text == "ok\n"
        assert httpx.get(f"{base}/metrics").status_code == 200
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and "windows-11-install" in page.text
        assert page.headers["Content-Security-Policy"] == CSP
        assert httpx.get(f"{base}/objects/TaskSequence/windows-11-install").status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_listener_elsewhere_without_a_token_keeps_its_probes_and_refuses_the_view(served: Served) -> None:
    from reconciler.web import WebApp

    class Refused:
        app = WebApp(lambda: served.view.refresher.snapshot, Access(refused=True))

        def dispatch(self, handler: object) -> None:
            from reconciler.web.server import dispatch

            dispatch(self.app, handler)  # type: ignore[arg-type]

    server = serve_metrics(Metrics(), "127.0.0.1", 0, web=Refused())
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        refused = httpx.get(f"{base}/")
        assert refused.status_code == 403 and "--web-token" in refused.text and "windows-11" not in refused.text
    finally:
        server.shutdown()
        server.server_close()


def test_serve_runs_until_sigterm(applied: Estate, tmp_path: Path) -> None:
    """A real process: it listens, serves the view, and stops cleanly on SIGTERM."""
    estate = copy_estate(applied, tmp_path / "estate")
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "serve", "--listen", "127.0.0.1:0"],
                               cwd=estate.root, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/) \(read-only", line)
        assert found, line
        page = httpx.get(found.group(1), timeout=10)
        assert page.status_code == 200 and "windows-11-install" in page.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_refresh_that_fails_is_shown_and_the_rows_read_before_are_kept(estate: Estate) -> None:
    """A view of a Git branch that is deleted: the page says why it could not refresh and keeps what it read."""
    repo = git.Repo.init(estate.root / "repo", initial_branch="main")
    shutil.copytree(estate.manifests, estate.root / "repo" / "manifests", ignore=shutil.ignore_patterns("secrets"))
    repo.git.add(A=True)
    repo.index.commit("estate")
    repo.git.branch("topic")
    settings = load_config(manifests_root(estate.manifests), None, None)
    view = WebView(lambda: open_workspace(estate.site, read_only=True),
                   lambda workspace: GitSource(str(estate.root / "repo"), "topic", "manifests", estate.root / "cache",
                                               settings.limits.max_manifest_bytes),
                   settings, estate.manifests, Access(), poll=0.1).start()
    running = Served(view)
    try:
        first = running.get("/").text
        assert f"topic @ <code>{repo.head.commit.hexsha[:12]}</code>" in first
        generation = view.refresher.generation
        repo.git.branch("-D", "topic")
        wait_until(lambda: view.refresher.generation > generation, 20, "a snapshot after the branch was deleted")
        html = running.get("/").text
        assert "The last refresh failed: ref &#39;topic&#39; does not exist" in html
        assert len(re.findall(r'<tr data-key="', html)) == 21  # what was read before
    finally:
        running.close()


def test_pending_and_failed_come_from_the_state_store(estate: Estate) -> None:
    """An apply killed mid-action leaves the object pending; an action that failed and is still planned is failed."""
    from reconciler.state import AuditEvent, StateStore

    with open_site(estate.site) as site:
        vhd = next(t for t in site.read().task_sequences.values() if t.name == "Windows 11 23H2 - VHD")
        site.set_task_sequence_enabled(vhd.id, True)  # planned again: DisableTaskSequence (drift)
    state = StateStore(estate.root / ".reconcile" / "state.db")
    try:
        state.intent("0123456789ab", "UpdateTaskSequence", "TaskSequence/windows-11-upgrade")
        state.record_audit([AuditEvent(at=time.time(), event="action", actor="osd@example", apply_id="a1",
                                       plan_id="0123456789ab", object="TaskSequence/windows-11-vhd", outcome="failed",
                                       detail={"verb": "DisableTaskSequence", "reason": "drift",
                                               "message": "the site refused: locked by the console"})])
    finally:
        state.close()
    running = Served(estate.view())
    try:
        html = running.get("/").text
        assert re.search(r'data-key="TaskSequence/windows-11-upgrade" data-status="pending"', html)
        assert "an apply stopped during UpdateTaskSequence (plan 0123456789ab)" in html
        assert re.search(r'data-key="TaskSequence/windows-11-vhd" data-status="failed"', html)
        assert "the site refused: locked by the console" in html
        page = running.get("/objects/TaskSequence/windows-11-vhd").text
        assert "DisableTaskSequence (drift)" in page and 'o-failed">failed' in page and "osd@example" in page
    finally:
        running.close()


def test_conditions_read_as_the_console_says_them() -> None:
    from reconciler.web.conditions import condition_text

    assert condition_text(None) == ""
    assert condition_text({"variable": {"name": "_SMSTSInWinPE", "operator": "equals", "value": "true"}}) == \
        '_SMSTSInWinPE equals "true"'
    assert condition_text([{"variable": {"name": "A", "operator": "exists"}},
                           {"or": [{"wmi": {"namespace": "root\\cimv2", "query": "SELECT * FROM Win32_Battery"}},
                                   {"not": [{"folder": {"path": "C:\\Keep"}}]}]}]) == \
        'A exists and any of (WMI query in root\\cimv2: SELECT * FROM Win32_Battery; not (folder C:\\Keep exists))'
    assert condition_text({"registry": {"keyPath": "HKLM\\SOFTWARE\\Contoso", "value": "Ring", "operator": "equals",
                                        "data": "Pilot"}}) == 'registry HKLM\\SOFTWARE\\Contoso\\Ring equals "Pilot"'
    assert condition_text({"software": {"productName": "Contoso Agent", "operator": "greaterEqual",
                                        "version": "2.0"}}) == 'software "Contoso Agent" installed version ' \
                                                               'greaterEqual 2.0'
