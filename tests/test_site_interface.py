"""The site behind its interface: opened by target, typed errors, a protocol that covers what the product calls.

Real embedded site files throughout; a busy site is a real second connection holding SQLite's write lock.
"""

from __future__ import annotations

import ast
import inspect
import sqlite3
from pathlib import Path

import pytest

from reconciler import storage
from reconciler.errors import PermanentError, TransientError
from reconciler.site import (
    PermanentSiteError,
    Site,
    SiteError,
    SiteNotFound,
    TransientSiteError,
    UnsupportedSite,
    create_site,
    open_site,
)
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.embedded.database import SiteDatabase
from reconciler.site.records import PackageType

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"


def test_a_path_opens_the_embedded_site_and_a_missing_one_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(SiteNotFound, match="does not exist; create it with 'reconcile site init"):
        open_site(tmp_path / "nowhere.db")
    assert not (tmp_path / "nowhere.db").exists()
    site = open_site(tmp_path / "demo.db", create_demo=True)
    try:
        assert site.site_code == "PS1" and site.location == str(tmp_path / "demo.db")
        assert site.computers_named("lab-pc-042")  # the demo inventory, devices compared without case
    finally:
        site.close()
    again = open_site(tmp_path / "demo.db")
    assert again.read().collection_by_name("OSD Pilot")
    again.close()


@pytest.mark.parametrize("url", ["https://cm01.corp.contoso.com/AdminService", "HTTPS://cm01/AdminService/"])
def test_an_adminservice_url_cannot_be_created_as_an_embedded_site(url: str, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSite, match="embedded site file only"):
        create_site(url)


def test_a_read_only_site_is_never_created_and_refuses_every_write(tmp_path: Path) -> None:
    path = tmp_path / "site.db"
    with pytest.raises(SiteNotFound):
        open_site(path, read_only=True)
    assert not path.exists()
    create_site(path, demo=True).close()
    site = open_site(path, read_only=True)
    try:
        before = site.read()
        with pytest.raises(PermanentSiteError, match="was opened read-only; nothing is written"):
            site.set_verification_settings(default_size=5)
        with pytest.raises(PermanentSiteError, match="read-only"):
            site.set_collection_variables(next(iter(before.collection_by_name("OSD Lab"))).id, 1,
                                          [("OSDX", "1", False)])
        assert site.read().verification == before.verification and site.read().collection_settings == {}
    finally:
        site.close()


def test_a_site_busy_past_the_busy_timeout_is_a_transient_error(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's "database is locked" after the wait becomes TransientSiteError: the controller retries it."""
    monkeypatch.setattr(storage, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / "site.db"
    create_site(path).close()
    site = open_site(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(TransientSiteError, match="is busy: another process held it locked") as caught:
            site.set_verification_settings(default_size=5)
        assert isinstance(caught.value, TransientError) and not isinstance(caught.value, PermanentError)
        assert site.read().site_code == "PS1"  # reading never waits for a writer (WAL)
        other.execute("ROLLBACK")
        assert site.set_verification_settings(default_size=5).default_size == 5  # and later it works
    finally:
        other.close()
        site.close()


def test_refusals_and_a_newer_schema_are_permanent_errors(tmp_path: Path) -> None:
    site = EmbeddedSite(tmp_path / "site.db")
    with pytest.raises(PermanentSiteError, match="built-in"):
        site.set_collection_variables("SMS00001", 1, [("OSDX", "1", False)])
    with pytest.raises(PermanentSiteError, match="does not exist"):
        site.set_computer_variables(424242, [("OSDX", "1", False)])
    site.close()
    db = sqlite3.connect(tmp_path / "site.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(PermanentSiteError, match="upgrade the tool"):
        open_site(tmp_path / "site.db")


def test_every_raise_in_the_embedded_site_says_whether_to_retry() -> None:
    """No bare SiteError (or any untyped error) is raised: each picks transient or permanent."""
    allowed = {"PermanentSiteError", "TransientSiteError", "SiteNotFound", "UnsupportedSite"}
    for path in sorted((PACKAGE / "site" / "embedded").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = node.exc.func.id if isinstance(node.exc.func, ast.Name) else ast.unparse(node.exc.func)
                assert name in allowed, f"{path.name}:{node.lineno} raises {name}"


def test_site_errors_live_in_the_interface() -> None:
    from reconciler.site import embedded

    assert embedded.SiteError is SiteError and issubclass(TransientSiteError, SiteError)
    assert issubclass(PermanentSiteError, SiteError) and SiteError.__module__ == "reconciler.site.errors"


def _protocol_members() -> set[str]:
    return {name for cls in Site.__mro__ if cls.__module__ == "reconciler.site.protocol" for name in vars(cls)
            if not name.startswith("_")} | {"site_code"}


def _site_calls(tree: ast.AST) -> set[str]:
    """Attributes used on something named ``site`` (``site.read()``, ``self.site.close()``, ``workspace.site.x``)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            named = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if named == "site":
                found.add(node.attr)
    return found


def test_the_protocol_holds_everything_the_product_calls_on_a_site() -> None:
    members = _protocol_members()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "site":
            continue
        missing = _site_calls(ast.parse(path.read_text())) - members
        assert not missing, f"{path.relative_to(PACKAGE)} calls {sorted(missing)} on a site, not in the Site protocol"


def test_the_embedded_site_implements_the_whole_protocol_with_the_same_signatures() -> None:
    for name in _protocol_members() - {"site_code"}:
        declared = getattr(Site, name)
        implemented = getattr(EmbeddedSite, name)
        if isinstance(declared, property):
            assert isinstance(implemented, property), name
            continue
        wanted = list(inspect.signature(declared).parameters)
        assert list(inspect.signature(implemented).parameters)[:len(wanted)] == wanted, name
    assert not hasattr(Site, "holds_secret")  # test-only: no real site can answer it


def test_no_two_parts_of_the_embedded_site_define_the_same_name() -> None:
    """The mixins share one object: a name defined twice would silently hide one of them."""
    seen: dict[str, str] = {}
    for part in EmbeddedSite.__mro__:
        if part in (EmbeddedSite, SiteDatabase, object) or not part.__module__.startswith("reconciler.site.embedded"):
            continue
        for name in vars(part):
            if name.startswith("__"):
                continue
            assert name not in seen, f"{name} is defined by {seen.get(name)} and {part.__name__}"
            seen[name] = part.__name__


def test_the_embedded_site_modules_stay_small() -> None:
    for path in (PACKAGE / "site" / "embedded").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


def test_inventory_is_the_embedded_sites_own_and_bulk_devices_get_consecutive_ids(tmp_path: Path) -> None:
    with EmbeddedSite(tmp_path / "site.db") as site:
        first = site.add_computer("PC-1")
        assert site.add_computers(["PC-2", "PC-3"]) == [first + 1, first + 2]
        site.add_package("Tools", PackageType.PACKAGE)
        assert site.computer(first + 2).name == "PC-3" and site.computer(1) is None  # type: ignore[union-attr]
