"""The web view in a real browser: Debian's Chromium, driven by Playwright, against real listeners on 127.0.0.1.

The tests skip, naming what is missing, on a machine without Chromium (``apt-get install chromium``) or without
Playwright (the test extra); ``playwright install`` is never needed: the system Chromium is used. CI sets
``RECONCILE_TESTS_REQUIRE_BROWSER=1`` (``.ci/run``), which turns the skip into a failure.

Every request any page makes is recorded, and each test ends by checking that none left 127.0.0.1 and that the
browser reported no Content-Security-Policy violation (an inline script or style would be one).
``RECONCILE_WEB_SCREENSHOTS=DIR`` writes the README's screenshots into DIR.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

import git
import httpx
import pytest

from reconciler.site import open_site
from tests.conftest import REPO, run_cli, wait_until
from tests.web_fixture import ENV, FILE_SECRET, INSTALL, SECRET_VALUES, Estate, Served, copy_estate, make_estate

REQUIRED_VARIABLE = "RECONCILE_TESTS_REQUIRE_BROWSER"
CHROMIUM = Path(os.environ.get("RECONCILE_TESTS_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
#: How long a page may take to show a state (the view polls every 2 s; a controller ticks every second here).
WAIT_MS = 30_000


def missing() -> str | None:
    if find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"Chromium is not at {CHROMIUM} (Debian: apt-get install chromium; or set RECONCILE_TESTS_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    reason = missing()
    if reason is not None:
        if os.environ.get(REQUIRED_VARIABLE):
            pytest.fail(f"{REQUIRED_VARIABLE} is set but the browser tests cannot run: {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC")
        yield context
        context.close()


class Page:
    """A browser tab that records every request it makes and every message of its console."""

    def __init__(self, context: object) -> None:
        self.page = context.new_page()  # type: ignore[attr-defined]
        self.requests: list[str] = []
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.navigations: list[str] = []
        self.bodies: dict[str, str] = {}
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        self.page.on("framenavigated", lambda frame: self.navigations.append(frame.url)
                     if frame == self.page.main_frame else None)
        self.page.on("response", self._keep)

    def _keep(self, response: object) -> None:
        with contextlib.suppress(Exception):  # a redirect or an aborted request has no body
            self.bodies[response.url] = response.text()  # type: ignore[attr-defined]

    def check(self) -> None:
        """Nothing left this machine, and the browser refused nothing the page asked for."""
        outside = [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1" or urlsplit(u).scheme != "http"]
        assert not outside, outside
        refused = [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]
        assert not refused, refused
        self.page.close()


@pytest.fixture
def tab(browser: object) -> Iterator[Page]:
    opened = Page(browser)
    yield opened
    opened.check()


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, browser: object) -> Estate:
    return make_estate(tmp_path_factory.mktemp("estate"))


@pytest.fixture
def estate(applied: Estate, tmp_path: Path) -> Estate:
    return copy_estate(applied, tmp_path / "estate")


def _rows(tab: Page) -> list[tuple[str, str]]:
    """(key, status) of every row, read at once: the table may be swapped for a newer one between two reads."""
    found = tab.page.locator("table.objects tbody tr[data-key]").evaluate_all(
        "rows => rows.map(r => [r.getAttribute('data-key'), r.getAttribute('data-status')])")
    return [(key, status) for key, status in found]


def _statuses(tab: Page) -> dict[str, str]:
    return dict(_rows(tab))


def _expect_keys(tab: Page, keys: list[str]) -> None:
    wait_until(lambda: [k for k, _ in _rows(tab)] == keys, WAIT_MS / 1000, f"the rows {keys}")


def _expect_rows(tab: Page, count: int) -> None:
    """Wait for the table to hold ``count`` rows (by selector: the page's policy forbids evaluating strings)."""
    from playwright.sync_api import expect

    expect(tab.page.locator("table.objects tbody tr[data-key]")).to_have_count(count, timeout=WAIT_MS)


def test_the_overview_lists_the_example_estate_with_statuses(estate: Estate, tab: Page) -> None:
    served = Served(estate.view())
    try:
        tab.page.goto(served.url + "/")
        statuses = _statuses(tab)
        assert len(statuses) == 21 and set(statuses.values()) == {"synced"}
        row = tab.page.locator('tr[data-key="TaskSequence/windows-11-install"]')
        assert row.locator("td").nth(2).inner_text() == "Windows 11 23H2 - Install"
        assert row.locator(".status").inner_text() == "synced"
        assert tab.page.locator("a.count.s-synced .n").inner_text() == "21"
    finally:
        served.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_drift_made_on_the_site_appears_after_the_next_tick_without_a_reload(tmp_path: Path, tab: Page) -> None:
    """A controller (its own process) reporting drift, with the view on its --listen, open in the browser."""
    repo_dir = tmp_path / "repo"
    shutil.copytree(REPO / "manifests", repo_dir / "manifests", ignore=shutil.ignore_patterns("secrets"))
    repo = git.Repo.init(repo_dir, initial_branch="main")
    repo.git.add(A=True)
    repo.index.commit("estate", author=git.Actor("t", "t@example.com"), committer=git.Actor("t", "t@example.com"))
    work = tmp_path / "work"
    (work / "manifests" / "secrets").mkdir(parents=True)
    (work / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text(FILE_SECRET + "\n")
    assert run_cli("site", "init", "--demo", "--site", ".reconcile/site.db", cwd=work).returncode == 0
    applied = run_cli("--yes", "--repo", str(repo_dir), "--ref", "main", "manifests", cwd=work, env=ENV)
    assert applied.returncode == 0, applied
    port = _free_port()
    controller = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "controller", "--repo", str(repo_dir), "--ref", "main", "--interval", "1s",
         "--no-self-heal", "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **ENV})
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, "the controller's first tick")
        tab.page.goto(base + "/")
        vhd = tab.page.locator('tr[data-key="TaskSequence/windows-11-vhd"] .status')
        _expect_rows(tab, 21)
        assert vhd.inner_text() == "synced"
        tab.page.evaluate("window.sameDocument = true")
        assert "reporting only (--no-self-heal)" in tab.page.locator("dl.facts").inner_text()
        with open_site(work / ".reconcile" / "site.db") as site:
            found = next(t for t in site.read().task_sequences.values() if t.name == "Windows 11 23H2 - VHD")
            site.set_task_sequence_enabled(found.id, True)  # the manifest keeps it disabled
        tab.page.wait_for_selector('tr[data-key="TaskSequence/windows-11-vhd"][data-status="drifted"]',
                                   timeout=WAIT_MS)
        assert "EnableTaskSequence" not in vhd.inner_text()
        reason = tab.page.locator('tr[data-key="TaskSequence/windows-11-vhd"] .reason').inner_text()
        assert reason.startswith("DisableTaskSequence (drift)")
        assert tab.page.locator("a.count.s-drifted .n").inner_text() == "1"
        assert "drift" in tab.page.locator("dl.facts .outcome").first.inner_text()
        assert tab.page.evaluate("window.sameDocument") is True  # the page was never reloaded
        assert tab.navigations == [base + "/"]
    finally:
        controller.terminate()
        controller.wait(timeout=30)


def test_the_object_page_shows_an_inserted_step_and_a_changed_condition(estate: Estate, tab: Page) -> None:
    estate.edit(INSTALL, "        - name: Enable BitLocker\n", "        - name: Set OSD tattoo\n"
                "          type: SetVariable\n          settings: {variableName: OSDTattoo, value: '2026-12'}\n"
                "        - name: Enable BitLocker\n")
    estate.edit(INSTALL, "{variable: {name: OSDBitLocker, operator: notEquals, value: \"false\"}}",
                "{variable: {name: OSDBitLocker, operator: equals, value: \"true\"}}")
    served = Served(estate.view())
    try:
        tab.page.goto(served.url + "/")
        tab.page.click('tr[data-key="TaskSequence/windows-11-install"] a')
        tab.page.wait_for_selector("h1:has-text('windows-11-install')")
        changes = tab.page.locator(".action .lines").inner_text()
        assert re.search(r'\+ step \(SetVariable\) Configure . Set OSD tattoo: inserted after "Record build date" '
                         r'in "Configure"', changes)
        assert 'condition.variable.operator: "notEquals" → "equals"' in changes
        assert 'condition.variable.value: "false" → "true"' in changes
        inserted = tab.page.locator("section li.mark-inserted").first
        assert inserted.locator(".node-name").first.inner_text() == "Set OSD tattoo"
        assert inserted.locator(".badge").first.inner_text() == "inserted"
        changed = tab.page.locator("section li.mark-changed", has_text="Enable BitLocker").first
        assert changed.locator(".condition").inner_text() == 'if OSDBitLocker equals "true"'
        # Groups collapse: the first group's steps hide when its summary is clicked.
        first_step = tab.page.locator("li.group").first.locator("li.step").first
        assert first_step.is_visible()
        tab.page.locator("li.group > details > summary").first.click()
        assert not first_step.is_visible()
    finally:
        served.close()


def test_filter_and_sort_work(estate: Estate, tab: Page) -> None:
    served = Served(estate.view())
    try:
        tab.page.goto(served.url + "/")
        tab.page.evaluate("window.sameDocument = true")
        tab.page.fill("input[name=q]", "pilot")
        _expect_keys(tab, ["TaskSequenceDeployment/windows-11-install-pilot", "CollectionVariables/osd-pilot"])
        assert "q=pilot" in tab.page.url
        tab.page.fill("input[name=q]", "")
        tab.page.select_option("select[name=kind]", "ComputerVariables")
        _expect_keys(tab, ["ComputerVariables/lab-pc-042", "ComputerVariables/osd-ref-01"])
        assert "kind=ComputerVariables" in tab.page.url and "q=" not in tab.page.url
        tab.page.select_option("select[name=status]", "drifted")
        tab.page.wait_for_selector("text=No object matches.", timeout=WAIT_MS)
        assert tab.page.evaluate("window.sameDocument") is True  # filtering never reloads the page
        tab.page.goto(served.url + "/")
        tab.page.click("th a[data-sort=name]")
        tab.page.wait_for_selector("th[aria-sort=ascending] a[data-sort=name]")
        names = [k.split("/")[1] for k, _ in _rows(tab)]
        assert names == sorted(names) and len(names) == 21
        tab.page.click("th a[data-sort=name]")
        tab.page.wait_for_selector("th[aria-sort=descending] a[data-sort=name]")
        assert [k.split("/")[1] for k, _ in _rows(tab)] == sorted(names, reverse=True)
    finally:
        served.close()


def test_a_console_name_holding_a_script_is_shown_as_text(estate: Estate, tab: Page) -> None:
    name = "<script>window.pwned=1;alert(1)</script>"
    estate.edit(INSTALL, "name: Windows 11 23H2 - Install\n", f'name: "{name}"\n')
    served = Served(estate.view())
    try:
        for path in ("/", "/objects/TaskSequence/windows-11-install", "/plan"):
            tab.page.goto(served.url + path)
            assert tab.page.evaluate("window.pwned") is None, path
        tab.page.goto(served.url + "/")
        cell = tab.page.locator('tr[data-key="TaskSequence/windows-11-install"] td.console')
        assert cell.inner_text() == name
        assert tab.page.locator("td.console script").count() == 0
        assert tab.dialogs == []
    finally:
        served.close()


def test_no_secret_value_in_any_page_or_asset(estate: Estate, tab: Page) -> None:
    estate.edit(INSTALL, "password: {valueFrom: {env: OSD_DOMAIN_JOIN_PASSWORD}}",
                "password: {valueFrom: {env: OSD_LOCAL_ADMIN_PASSWORD}}")
    served = Served(estate.view())
    try:
        tab.page.goto(served.url + "/?per=all")
        objects = [a.get_attribute("href") for a in tab.page.locator("table.objects tbody td a").all()]
        assert len(objects) == 21
        pages = ["/", "/plan", "/history", *(f"/{href.removeprefix('./')}" for href in objects if href)]
        for path in pages:
            tab.page.goto(served.url + path)
            tab.page.locator("details").evaluate_all("all => all.forEach(d => d.open = true)")
            shown = tab.page.content() + tab.page.inner_text("body")
            for secret in SECRET_VALUES:
                assert secret not in shown, (path, secret[:4])
        assert any(url.endswith("/static/app.js") for url in tab.bodies)
        for url, body in tab.bodies.items():
            for secret in SECRET_VALUES:
                assert secret not in body, (url, secret[:4])
    finally:
        served.close()


def test_screenshots_of_the_overview_and_an_object_page(estate: Estate, tab: Page, tmp_path: Path) -> None:
    """The README's pictures: the estate as a Git working copy, with a change waiting and a drift on the site."""
    repo = git.Repo.init(estate.root, initial_branch="main")
    who = git.Actor("OSD team", "osd@example.com")
    repo.git.add("manifests")
    repo.index.commit("Contoso OSD estate", author=who, committer=who)
    estate.edit("deployments/windows-11-install.yaml", "comment: Self-service reinstall",
                "comment: Self-service reinstall from Software Center")
    repo.git.add("manifests")
    repo.index.commit("Say where the reinstall is offered", author=who, committer=who)
    estate.apply()  # from the working copy: the apply records its commit
    estate.edit(INSTALL, "        - name: Enable BitLocker\n", "        - name: Set OSD tattoo\n"
                "          type: SetVariable\n          settings: {variableName: OSDTattoo, value: '2026-12'}\n"
                "        - name: Enable BitLocker\n")
    estate.edit(INSTALL, "{variable: {name: OSDBitLocker, operator: notEquals, value: \"false\"}}",
                "{variable: {name: OSDBitLocker, operator: equals, value: \"true\"}}")
    repo.git.add("manifests")
    repo.index.commit("Tattoo the build; BitLocker only when asked", author=who, committer=who)
    with open_site(estate.site) as site:
        found = next(t for t in site.read().task_sequences.values() if t.name == "Windows 11 23H2 - VHD")
        site.set_task_sequence_enabled(found.id, True)
    target = Path(os.environ.get("RECONCILE_WEB_SCREENSHOTS") or tmp_path).resolve()
    target.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(estate.root):
        served = Served(estate.view(relative=True))
        try:
            tab.page.set_viewport_size({"width": 1280, "height": 900})
            tab.page.goto(served.url + "/")
            tab.page.screenshot(path=str(target / "web-overview.png"), full_page=True)
            tab.page.goto(served.url + "/objects/TaskSequence/windows-11-install")
            tab.page.locator("li.group > details > summary", has_text="Install Operating System").first.click()
            tab.page.evaluate("window.scrollTo(0, 0)")
            tab.page.screenshot(path=str(target / "web-object.png"), full_page=True,
                                clip={"x": 0, "y": 0, "width": 1280, "height": 1300})
        finally:
            served.close()
    for name in ("web-overview.png", "web-object.png"):
        assert (target / name).stat().st_size > 10_000
