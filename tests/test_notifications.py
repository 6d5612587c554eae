"""Notifications: the controller tells a webhook, Slack, Teams and e-mail about changes of state.

Real receivers on 127.0.0.1: an HTTP server that records what is POSTed (and can hang or fail on request),
and an SMTP server (aiosmtpd). The controller ticks in this process against a real Git repository and an
embedded site; tests wait for deliveries, never for a time.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import git
import pytest
from aiosmtpd.controller import Controller as SmtpController

from reconciler.config import load_config
from reconciler.controller.tick import Controller, ControllerConfig
from reconciler.notify import Event, Notifier, NotifyError, RetryPolicy, notices_for, target_from_url
from reconciler.notify.targets import EmailTarget, SlackTarget, TeamsTarget, WebhookTarget
from reconciler.site import open_site
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.state import open_state
from tests.conftest import REPO, run_cli, wait_until

ESTATE = REPO / "tests" / "data" / "estate"
SECRET = "notify-test-secret-value"
ENV = {"OSD_TEST_LOCAL_ADMIN_PASSWORD": SECRET}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST (path, JSON body); it can fail or hang on request."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.fail_next = 0
        self.hang = threading.Event()  # set: requests wait until released
        self.release = threading.Event()
        self.waiting = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.hang.is_set():
                    receiver.waiting += 1
                    receiver.release.wait(30)
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                receiver.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self, path: str) -> list[Any]:
        return [body for p, body in self.posts if p == path]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    smtp = SmtpController(box, hostname="127.0.0.1", port=port)
    smtp.start()
    yield box, port
    smtp.stop()


class World:
    """A Git repository of the small estate, an embedded demo site, its state store and a controller."""

    def __init__(self, root: Path, notifier: Notifier, self_heal: bool = True) -> None:
        repo_dir = root / "repo"
        shutil.copytree(ESTATE, repo_dir / "manifests")
        shutil.rmtree(repo_dir / "manifests" / "secrets")
        repo = git.Repo.init(repo_dir, initial_branch="main")
        repo.config_writer().set_value("user", "name", "t").release()
        repo.config_writer().set_value("user", "email", "t@example.com").release()
        repo.git.add(A=True)
        self.sha = repo.index.commit("estate").hexsha
        work = root / "work"
        (work / "manifests" / "secrets").mkdir(parents=True)
        (work / "manifests" / "secrets" / "join.txt").write_text("file-secret\n")
        self.site_path = work / ".reconcile" / "site.db"
        self.site_path.parent.mkdir()
        with EmbeddedSite(self.site_path) as site:
            add_demo_inventory(site)
        self.site = open_site(self.site_path)
        self.state = open_state(work / ".reconcile" / "state.db")
        config = ControllerConfig(repo=str(repo_dir), ref="main", self_heal=self_heal,
                                  secrets_base=work / "manifests", cache_dir=work / ".reconcile",
                                  settings=load_config(work / "manifests"))
        self.controller = Controller(config, self.site, self.state)
        self.controller.notifier = notifier
        self.controller.link = "http://127.0.0.1:9180/"

    def tick(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        with monkeypatch.context() as patch:
            for name, value in ENV.items():
                patch.setenv(name, value)
            return self.controller.tick(force=True)

    def console(self) -> EmbeddedSite:
        return EmbeddedSite(self.site_path)

    def close(self) -> None:
        self.controller.close()
        self.site.close()
        self.state.close()


def test_state_changes_make_notices_and_repeats_make_none() -> None:
    common = {"site": "PS1", "ref": "main", "commit": "abc", "error": None}
    drifted = notices_for({"outcome": "ok"}, {"TaskSequence/a": "synced"}, "drift",
                          {"TaskSequence/a": "drifted"}, details={"TaskSequence/a": "EnableTaskSequence (drift)"},
                          **common)
    assert [n.event for n in drifted] == [Event.DRIFTED]
    assert drifted[0].objects[0].detail == "EnableTaskSequence (drift)" and "not reverted" in drifted[0].reason
    assert notices_for({"outcome": "drift"}, {"TaskSequence/a": "drifted"}, "drift", {"TaskSequence/a": "drifted"},
                       **common) == []
    failed = notices_for({"outcome": "ok"}, {}, "failed", {"TaskSequence/a": "failed"},
                         **{**common, "error": "site refused"})
    assert [n.event for n in failed] == [Event.FAILED] and failed[0].reason == "site refused"
    assert notices_for({"outcome": "failed"}, {}, "error", {}, **common) == []
    assert [n.event for n in notices_for({"outcome": "error"}, {}, "ok", {}, **common)] == [Event.RECOVERED]
    assert [n.event for n in notices_for({"outcome": "ok"}, {}, "blocked", {"X/y": "blocked"}, **common)] == \
        [Event.BLOCKED]
    assert notices_for({"outcome": "ok"}, {}, "skipped", {}, **common) == []


def test_the_controller_notifies_a_webhook_slack_teams_and_email(tmp_path: Path, receiver: Receiver,
                                                                  mailbox: tuple[Mailbox, int],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    box, port = mailbox
    targets = [WebhookTarget(f"{receiver.url}/hook"), SlackTarget(f"{receiver.url}/slack"),
               TeamsTarget(f"{receiver.url}/teams"),
               EmailTarget("127.0.0.1", "reconcile@example.com", ("osd@example.com",), port, "none")]
    notifier = Notifier(targets)
    world = World(tmp_path, notifier)
    try:
        first = world.tick(monkeypatch)
        assert first.outcome == "ok", first
        # The first apply created a Required OS deployment: high risk, said once per target.
        wait_until(lambda: notifier.sent == 4, 20, "the high-risk notice at every target")
        hook = receiver.bodies("/hook")[0]
        assert hook["format_version"] == "1" and hook["event"] == "high-risk-applied"
        assert hook["objects"][0]["object"] == "TaskSequenceDeployment/win11-install-pilot"
        assert hook["commit"] == world.sha and hook["link"] == "http://127.0.0.1:9180/"
        # A console change is drift: reverted by self-heal, and notified with the object, field and commit.
        with world.console() as console:
            ts_id = console.find_task_sequences("Windows 11 - Install")[0].id
            assert ts_id is not None
            console.set_task_sequence_enabled(ts_id, False)
        second = world.tick(monkeypatch)
        assert second.objects["TaskSequence/win11-install"] == "drifted" or second.outcome == "ok"
        wait_until(lambda: notifier.sent == 8, 20, "the drift notice at every target")
        drift = receiver.bodies("/hook")[1]
        assert drift["event"] == "drifted" and drift["commit"] == world.sha
        assert drift["objects"] == [{"object": "TaskSequence/win11-install", "status": "drifted",
                                     "detail": "EnableTaskSequence (drift): enabled"}]
        slack = receiver.bodies("/slack")[1]["text"]
        assert "drifted from Git" in slack and "TaskSequence/win11-install" in slack and world.sha[:12] in slack
        card = receiver.bodies("/teams")[1]["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert card["content"]["actions"][0]["url"] == "http://127.0.0.1:9180/"
        texts = " ".join(block["text"] for block in card["content"]["body"])
        assert "TaskSequence/win11-install" in texts
        recipients, mail = box.messages[1]
        assert recipients == ["osd@example.com"] and "drifted from Git" in mail["Subject"]
        assert "TaskSequence/win11-install" in mail.get_payload()
        # The same state again is no news.
        third = world.tick(monkeypatch)
        assert third.outcome == "ok"
        assert notifier.sent == 8 and notifier.queue.empty()
        everything = json.dumps(receiver.posts) + "".join(m.as_string() for _, m in box.messages)
        assert SECRET not in everything and "file-secret" not in everything
    finally:
        notifier.close()
        world.close()


def test_a_hanging_target_never_holds_up_a_tick_and_a_failing_one_is_retried(
        tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver.hang.set()
    notifier = Notifier([WebhookTarget(f"{receiver.url}/hook")], RetryPolicy(attempts=3, first_delay=0.01))
    world = World(tmp_path, notifier)
    try:
        result = world.tick(monkeypatch)
        # The tick is over while its notice is still stuck in the receiver.
        assert result.outcome == "ok"
        wait_until(lambda: receiver.waiting == 1, 10, "the notice to reach the hanging receiver")
        assert notifier.sent == 0
        receiver.hang.clear()
        receiver.fail_next = 1
        receiver.release.set()
        wait_until(lambda: notifier.sent == 1, 20, "the notice to be delivered on a later attempt")
        assert receiver.bodies("/hook")[0]["event"] == "high-risk-applied"
    finally:
        notifier.close()
        world.close()


def test_a_full_queue_drops_a_notice_instead_of_waiting(receiver: Receiver) -> None:
    receiver.hang.set()
    notifier = Notifier([WebhookTarget(f"{receiver.url}/hook")], capacity=1)
    try:
        notice = notices_for({"outcome": "ok"}, {}, "failed", {}, site="PS1", ref="main", commit="a", error="x")[0]
        started = time.monotonic()
        for _ in range(5):
            notifier.notify(notice)
        assert time.monotonic() - started < 1.0
        assert notifier.dropped >= 3
    finally:
        receiver.release.set()
        notifier.close()


def test_notify_urls_pick_the_target_and_never_show_a_token() -> None:
    assert isinstance(target_from_url("https://hooks.slack.com/services/T0/B0/XYZ"), SlackTarget)
    assert isinstance(target_from_url("https://contoso.webhook.office.com/webhookb2/abc"), TeamsTarget)
    assert isinstance(target_from_url("teams+https://relay.example.com/teams"), TeamsTarget)
    assert isinstance(target_from_url("https://hooks.example.com/reconcile"), WebhookTarget)
    mail = target_from_url("smtp+starttls://svc@smtp.example.com:587?from=a@example.com&to=b@example.com,c@x.org")
    assert isinstance(mail, EmailTarget) and mail.tls == "starttls" and mail.to == ("b@example.com", "c@x.org")
    assert "XYZ" not in target_from_url("https://hooks.slack.com/services/T0/B0/XYZ").describe()
    with pytest.raises(NotifyError, match="a password never goes in a URL"):
        target_from_url("smtp://u:hunter2@smtp.example.com?from=a@x&to=b@x")


def test_a_slack_url_written_in_reconcile_yaml_is_refused_with_file_and_line(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "reconcile.yaml").write_text("notifications:\n  targets:\n    - type: slack\n      url: "
                                              "https://hooks.slack.com/services/T0/B0/SECRETTOKEN\n")
    result = run_cli("controller", "--repo", str(tmp_path), "--once", cwd=tmp_path)
    assert result.returncode == 1, result
    assert "manifests/reconcile.yaml:3: notifications.targets[0]: url holds a credential" in result.stderr
    assert "SECRETTOKEN" not in result.stderr + result.stdout


def test_a_notification_source_is_reserved_from_manifests(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "reconcile.yaml").write_text("notifications:\n  targets:\n    - type: teams\n      url: "
                                              "{valueFrom: {env: OSD_TEAMS_WEBHOOK}}\n")
    settings = load_config(manifests)
    assert "env:OSD_TEAMS_WEBHOOK" in settings.secrets.reserved


def test_the_tick_log_names_objects_and_fields_and_a_drift_report_is_a_success(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.controller.loop import Loop, LoopConfig
    from reconciler.controller.metrics import Metrics

    world = World(tmp_path, Notifier([]), self_heal=True)
    try:
        assert world.tick(monkeypatch).outcome == "ok"
        with world.console() as console:
            ts_id = console.find_task_sequences("Windows 11 - Install")[0].id
            assert ts_id is not None
            console.set_task_sequence_enabled(ts_id, False)
        world.controller.config.self_heal = False
        events: list[dict[str, Any]] = []
        metrics = Metrics()
        loop = Loop(world.controller, LoopConfig(once=True, poll=0), metrics, events.append)
        with monkeypatch.context() as patch:
            for name, value in ENV.items():
                patch.setenv(name, value)
            assert loop.run() == 0
        tick = next(e for e in events if e["event"] == "tick")
        assert tick["outcome"] == "drift"
        assert tick["changed"] == "TaskSequence/win11-install EnableTaskSequence (drift): enabled"
        # Reporting drift without reverting it is what --no-self-heal asks for: the last success moves.
        assert metrics.last_success._value.get() > 0
    finally:
        world.close()
