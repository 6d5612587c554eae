"""The example estate (``manifests/``) applied to an embedded demo site, and the web view over it, for the web tests.

The estate is made once per test session (site init, apply) and copied for each test that changes it, so a test
starts from an applied estate in a few milliseconds. Every secret the manifests read has a distinctive value
(:data:`SECRETS`), so a test can look for any of them in what the view serves.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from reconciler.config import load_config, manifests_root
from reconciler.web import Access, FolderSource, WebServer, WebView
from reconciler.workspace import open_workspace
from tests.conftest import REPO, run_cli

#: Every secret the example manifests read from the environment, with a value no page may ever show.
SECRETS = {
    "OSD_LOCAL_ADMIN_PASSWORD": "Adm1n-Secret-7731-zq",
    "OSD_DOMAIN_JOIN_PASSWORD": "Join-Secret-4402-xv",
    "OSD_FIRMWARE_ACCOUNT_PASSWORD": "Firmware-Secret-9918-kp",
    "OSD_CAPTURE_PASSWORD": "Capture-Secret-5521-mw",
    "OSD_LAB_PC_042_BITLOCKER_PIN": "86127394",
}
FILE_SECRET = "File-Join-Secret-3310-hb"
SECRET_VALUES = (*SECRETS.values(), FILE_SECRET)
ENV = {**SECRETS, "NO_COLOR": "1"}
INSTALL = "task-sequences/windows-11-install.yaml"


@dataclass
class Estate:
    root: Path

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def site(self) -> Path:
        return self.root / ".reconcile" / "site.db"

    def edit(self, file: str, old: str, new: str) -> None:
        path = self.manifests / file
        text = path.read_text()
        assert old in text, (file, old)
        path.write_text(text.replace(old, new, 1))

    def apply(self) -> None:
        done = run_cli("--yes", "manifests", cwd=self.root, env=ENV)
        assert done.returncode == 0, done

    def view(self, access: Access | None = None, refresh: float = 30.0, poll: float = 0.1,
             relative: bool = False) -> WebView:
        """The view of this estate (``relative``: named as a person in its folder would, for pictures)."""
        manifests, site = (Path("manifests"), Path(".reconcile/site.db")) if relative else (self.manifests, self.site)
        settings = load_config(manifests_root(manifests), None, None)
        return WebView(lambda: open_workspace(site, read_only=True),
                       lambda workspace: FolderSource(manifests, settings.limits.max_manifest_bytes),
                       settings, manifests, access or Access(), refresh=refresh, poll=poll).start()


def make_estate(root: Path) -> Estate:
    """The example estate applied to a new demo site in ``root``."""
    shutil.copytree(REPO / "manifests", root / "manifests", ignore=shutil.ignore_patterns("secrets"))
    (root / "manifests" / "secrets").mkdir()
    (root / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text(FILE_SECRET + "\n")
    made = run_cli("site", "init", "--demo", "--site", ".reconcile/site.db", cwd=root)
    assert made.returncode == 0, made
    estate = Estate(root)
    estate.apply()
    return estate


def copy_estate(source: Estate, root: Path) -> Estate:
    shutil.copytree(source.root, root, dirs_exist_ok=True)
    return Estate(root)


class Served:
    """A view on a real listener on 127.0.0.1 and an HTTP client for it."""

    def __init__(self, view: WebView) -> None:
        self.view = view
        self.server = WebServer(view.app, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.client.get(path, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.close()
        self.server.close()
        self.view.close()
