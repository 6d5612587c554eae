"""Where notices go: a generic JSON webhook, Microsoft Teams and Slack incoming webhooks, e-mail over SMTP.

Each target is one HTTP POST or one SMTP conversation, written here rather than through a library such as
apprise: apprise fixes the hosts of Slack and Teams webhooks inside its plugins (so a notice can neither go
through a relay an organisation requires nor be tested against a receiver), sends its own JSON for a
generic webhook instead of this tool's versioned document, and would bring in a hundred services and their
dependencies for four. httpx (already a dependency) and the standard library's smtplib do the sending.

A target's URL often *is* a credential (a Slack or Teams webhook URL, a token in a query), so a target is
named in every message by :meth:`Target.describe` (scheme, host, and ``…``), never by its URL.
"""

from __future__ import annotations

import email.message
import smtplib
import ssl
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from reconciler.errors import ReconcilerError
from reconciler.notify.notice import Notice

#: Seconds one attempt may take (connect, send, answer): a notice is never worth holding a sender longer.
SEND_TIMEOUT = 10.0


class NotifyError(ReconcilerError):
    """A notification target is written wrongly; the message names it, never its URL in full."""


class SendFailed(Exception):
    """One attempt to send failed; ``retry`` says whether another attempt may work, ``after`` when."""

    def __init__(self, message: str, retry: bool, after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.after = after


class Target(Protocol):
    def describe(self) -> str:
        """The target as a message may name it: no token, no password."""
        ...

    def send(self, notice: Notice) -> None:
        """One attempt; raises :class:`SendFailed`."""
        ...


def redact(url: str) -> str:
    """``https://hooks.slack.com/…``: the scheme and host of a URL whose path or query may be a token."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def _post(url: str, body: dict[str, object], what: str) -> None:
    try:
        response = httpx.post(url, json=body, timeout=SEND_TIMEOUT, follow_redirects=False)
    except httpx.TimeoutException:
        raise SendFailed(f"{what}: timed out after {SEND_TIMEOUT:g} s", retry=True) from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"{what}: {type(exc).__name__}", retry=True) from None
    if response.status_code < 300:
        return
    retry = response.status_code in (408, 429) or response.status_code >= 500
    after = None
    if retry and response.headers.get("retry-after", "").strip().isdigit():
        after = float(response.headers["retry-after"].strip())
    raise SendFailed(f"{what}: HTTP {response.status_code}", retry=retry, after=after)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A generic webhook: the notice's JSON document (format_version 1), POSTed as application/json."""

    url: str = field(repr=False)

    def describe(self) -> str:
        return f"webhook {redact(self.url)}"

    def send(self, notice: Notice) -> None:
        _post(self.url, notice.to_json(), self.describe())


@dataclass(frozen=True, slots=True)
class SlackTarget:
    """A Slack incoming webhook (``https://hooks.slack.com/services/…``): ``text`` in Slack's mrkdwn."""

    url: str = field(repr=False)

    def describe(self) -> str:
        return f"Slack {redact(self.url)}"

    def send(self, notice: Notice) -> None:
        text = f"*{_slack_escape(notice.title)}*\n" + "\n".join(_slack_escape(line) for line in notice.lines())
        _post(self.url, {"text": text}, self.describe())


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions); anything else is shown as written.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True, slots=True)
class TeamsTarget:
    """A Microsoft Teams incoming webhook (a Workflows "post to a channel when a webhook request is received"
    URL, or a legacy connector's): a message with one Adaptive Card, which both accept."""

    url: str = field(repr=False)

    def describe(self) -> str:
        return f"Teams {redact(self.url)}"

    def send(self, notice: Notice) -> None:
        body: list[dict[str, object]] = [
            {"type": "TextBlock", "text": notice.title, "weight": "Bolder", "size": "Medium", "wrap": True},
            *({"type": "TextBlock", "text": line, "wrap": True, "spacing": "None"} for line in notice.lines()),
        ]
        card: dict[str, object] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                                   "type": "AdaptiveCard", "version": "1.4", "body": body}
        if notice.link:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the web view", "url": notice.link}]
        _post(self.url, {"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]},
            self.describe())


@dataclass(frozen=True, slots=True)
class EmailTarget:
    """E-mail over SMTP: ``tls`` none (a relay on the LAN), starttls (587) or ssl (465)."""

    host: str
    sender: str
    to: tuple[str, ...]
    port: int | None = None
    tls: Literal["none", "starttls", "ssl"] = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None

    def describe(self) -> str:
        return f"e-mail via {self.host}:{self._port()} to {', '.join(self.to)}"

    def _port(self) -> int:
        return self.port or {"none": 25, "starttls": 587, "ssl": 465}[self.tls]

    def send(self, notice: Notice) -> None:
        message = email.message.EmailMessage()
        message["Subject"] = notice.title
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message.set_content(notice.text() + "\n")
        context = ssl.create_default_context(cafile=self.ca_bundle)
        try:
            if self.tls == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self._port(), timeout=SEND_TIMEOUT,
                                                        context=context)
            else:
                client = smtplib.SMTP(self.host, self._port(), timeout=SEND_TIMEOUT)
            with client:
                if self.tls == "starttls":
                    client.starttls(context=context)
                if self.username:
                    client.login(self.username, self.password or "")
                client.send_message(message)
        except smtplib.SMTPAuthenticationError:
            raise SendFailed(f"{self.describe()}: the server refused the login of {self.username}",
                             retry=False) from None
        except smtplib.SMTPResponseException as exc:
            raise SendFailed(f"{self.describe()}: SMTP {exc.smtp_code}", retry=exc.smtp_code >= 400 and
                             exc.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendFailed(f"{self.describe()}: {type(exc).__name__}", retry=True) from None


#: Hosts whose webhooks are Slack's or Teams' (Teams: legacy connectors, and Workflows' Power Automate URLs).
_SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
_TEAMS_HOSTS = (".webhook.office.com", ".logic.azure.com", ".powerautomate.com", ".api.powerplatform.com")


def target_from_url(url: str) -> Target:
    """A target from ``--notify``: ``https://…`` (Slack and Teams known by host; ``slack+``, ``teams+`` or
    ``webhook+`` in front to say so), or ``smtp://[user@]host[:port]?from=…&to=…`` (``smtp+starttls://``,
    ``smtps://``; the password from RECONCILE_NOTIFY_SMTP_PASSWORD, never in the URL)."""
    import os

    head, sep, tail = url.partition("://")
    if not sep:
        raise NotifyError(f"--notify {url[:40]!r} ({len(url)} characters): use an https:// webhook URL (Slack, "
                          "Teams or any JSON receiver) or smtp://host?from=…&to=…")
    if head.casefold() in _SMTP_SCHEMES:
        parts = urlsplit("smtp://" + tail)
        if parts.password:
            raise NotifyError(f"--notify {redact(url)}: a password never goes in a URL; set "
                              "RECONCILE_NOTIFY_SMTP_PASSWORD, or use notifications in reconcile.yaml")
        query = parse_qs(parts.query)
        sender, to = query.get("from", [""])[0], tuple(t for v in query.get("to", []) for t in v.split(",") if t)
        if not parts.hostname or not sender or not to:
            raise NotifyError(f"--notify {redact(url)}: an e-mail target is smtp://host[:port]?from=ADDRESS&to="
                              "ADDRESS[,ADDRESS]")
        return EmailTarget(parts.hostname, sender, to, parts.port, _SMTP_SCHEMES[head.casefold()],
                           unquote(parts.username or "") or None, os.environ.get("RECONCILE_NOTIFY_SMTP_PASSWORD"))
    kind, _, scheme = head.casefold().rpartition("+")
    rest = f"{scheme}://{tail}"
    parts = urlsplit(rest)
    if scheme not in ("http", "https") or not parts.hostname:
        raise NotifyError(f"--notify {url[:40]!r} ({len(url)} characters): use an https:// webhook URL (Slack, "
                          "Teams or any JSON receiver) or smtp://host?from=…&to=…")
    host = parts.hostname.casefold()
    if kind == "slack" or (not kind and host in _SLACK_HOSTS):
        return SlackTarget(rest)
    if kind == "teams" or (not kind and host.endswith(_TEAMS_HOSTS)):
        return TeamsTarget(rest)
    if kind in ("", "webhook"):
        return WebhookTarget(rest)
    raise NotifyError(f"--notify {redact(rest)}: {kind!r}+ is not a target type; use slack+, teams+ or webhook+")


_SMTP_SCHEMES: dict[str, Literal["none", "starttls", "ssl"]] = {"smtp": "none", "smtp+starttls": "starttls",
                                                                 "smtps": "ssl"}
