"""``reconcile prestage``: end to end on the embedded site (a listing: it holds no content bytes), and the
``Publish-CMPrestageContent`` calls a real site gets, at the pypsrp boundary."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from reconciler.prestage import LISTING_KIND, PrestageError, prestage
from reconciler.render import prestage as render_prestage
from reconciler.site import ContentState, open_site
from reconciler.site.adminservice.winrm import WinRMSession, WinRMUnavailable
from reconciler.site.options import Credentials, SiteOptions, WinRMOptions
from tests.conftest import REPO, run_cli
from tests.test_reconcile_e2e import EXAMPLE_SECRETS
from tests.winrm_fake import Answer, FakeHost

INSTALL = "Windows 11 23H2 - Install"
CHILD = "PS100010"  # Module - BIOS settings, run by the install sequence
PRESTAGED = {"PS100007": "BootImage", "PS100008": "OperatingSystemImage", "PS10000B": "Package",
             "PS10000D": "Package", "PS10000E": "DriverPackage", "PS10000F": "DriverPackage"}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example estate applied to an embedded site (content distributed), copied fresh for each test."""
    work = tmp_path_factory.mktemp("estate")
    shutil.copytree(REPO / "manifests", work / "manifests")
    (work / "manifests" / "secrets").mkdir(exist_ok=True)
    (work / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text("example-file-secret\n")
    assert run_cli("site", "init", "--demo", "--site", "site.db", cwd=work).returncode == 0
    result = run_cli("apply", "manifests", "--site", "site.db", "--yes", cwd=work, env=EXAMPLE_SECRETS)
    assert result.returncode == 0, result
    return work


@pytest.fixture
def work(applied: Path, tmp_path: Path) -> Path:
    shutil.copy(applied / "site.db", tmp_path / "site.db")
    return tmp_path


def test_the_embedded_site_writes_a_listing_of_every_package_the_sequence_and_its_child_need(work: Path) -> None:
    result = run_cli("prestage", INSTALL, "--out", "win11.pkgx", "--site", "site.db", "--read-only", cwd=work)
    assert result.returncode == 0, result
    assert "not a prestaged content file (the embedded site holds no content bytes)" in result.stdout
    listing = json.loads((work / "win11.pkgx").read_text())
    assert listing["kind"] == LISTING_KIND and "holds no content bytes" in listing["note"]
    assert listing["taskSequence"] == {"id": "PS100012", "name": INSTALL}
    assert listing["childSequences"] == [{"id": CHILD, "name": "Module - BIOS settings"}]
    assert {c["id"]: c["type"] for c in listing["content"]} == PRESTAGED
    assert all(c["sourceVersion"] == 1 for c in listing["content"])
    tools = next(c for c in listing["content"] if c["id"] == "PS10000D")
    assert CHILD in tools["referencedBy"]  # the child's content comes along
    assert listing["sourceDistributionPoint"] == "CM01.corp.contoso.com"  # the first holding everything


def test_by_package_id_with_a_chosen_dp_and_json_output(work: Path) -> None:
    result = run_cli("prestage", "ps100012", "--out", "x.PKGX", "--dp", "dp01.corp.contoso.com", "--site", "site.db",
                     "--output", "json", cwd=work)
    assert result.returncode == 0, result
    document = json.loads(result.stdout)
    assert document["source_distribution_point"] == "DP01.corp.contoso.com" and document["listing"] is True
    assert document["files"] == ["x.PKGX"] and document["fetch"] is None


def test_content_missing_or_old_on_the_source_dp_is_named_and_nothing_written(work: Path) -> None:
    site = open_site(work / "site.db")
    try:
        site.set_content_state("PS100008", "DP01.corp.contoso.com", ContentState.INSTALL_FAILED)  # type: ignore[attr-defined]
        site.update_package_source("PS10000D")  # type: ignore[attr-defined]  # every DP now holds version 1 of 2
    finally:
        site.close()
    result = run_cli("prestage", INSTALL, "--out", "x.pkgx", "--dp", "DP01.corp.contoso.com", "--site", "site.db",
                     cwd=work)
    assert result.returncode == 1
    assert "PS100008 (install failed)" in result.stderr and "PS10000D (version 1, current 2)" in result.stderr
    assert not (work / "x.pkgx").exists()
    chosen = run_cli("prestage", INSTALL, "--out", "x.pkgx", "--site", "site.db", cwd=work)
    assert chosen.returncode == 1 and "no distribution point holds all the content" in chosen.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("No such sequence", "--out", "x.pkgx"), "has no task sequence 'No such sequence'"),
    ((INSTALL, "--out", "x.pkgx", "--dp", "dp99"), "has no distribution point 'dp99'"),
])
def test_unknown_names_are_one_error_line(work: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli("prestage", *args, "--site", "site.db", cwd=work)
    assert result.returncode == 1 and message in result.stderr


def test_an_existing_file_needs_force_and_the_name_must_end_in_pkgx(work: Path) -> None:
    (work / "x.pkgx").write_text("keep")
    refused = run_cli("prestage", INSTALL, "--out", "x.pkgx", "--site", "site.db", cwd=work)
    assert refused.returncode == 1 and "already exists; pass --force" in refused.stderr
    assert (work / "x.pkgx").read_text() == "keep"
    assert run_cli("prestage", INSTALL, "--out", "x.pkgx", "--force", "--site", "site.db", cwd=work).returncode == 0
    assert run_cli("prestage", INSTALL, "--out", "x.zip", "--site", "site.db", cwd=work).returncode == 2


def _remote(winrm: bool = True) -> SiteOptions:
    return SiteOptions(url="https://cm01.corp.contoso.com/AdminService",
                       winrm=WinRMOptions(host="cm01.corp.contoso.com", credentials=Credentials()) if winrm else None)


def test_a_real_site_publishes_one_file_per_kind_on_the_winrm_host(work: Path) -> None:
    host = FakeHost()
    host.answer("Get-PSDrive", Answer(output=["PS1"]))

    def session(options: SiteOptions, site_code: str) -> WinRMSession:
        assert options.winrm is not None
        return WinRMSession(options.winrm, site_code=site_code, provider_host=options.host, connect=host.connect,
                            shell=host.shell)

    site = open_site(work / "site.db", read_only=True)
    try:
        result = prestage(site, INSTALL, "C:\\Prestage\\win11.pkgx", options=_remote(), session=session)
    finally:
        site.close()
    published = [i for i in host.invocations if i.command == "Publish-CMPrestageContent"]
    assert [(i.parameters["FileName"], {k: v for k, v in i.parameters.items() if k.endswith("Id")})
            for i in published] == [
        ("C:\\Prestage\\win11-BootImage.pkgx", {"BootImageId": ["PS100007"]}),
        ("C:\\Prestage\\win11-DriverPackage.pkgx", {"DriverPackageId": ["PS10000E", "PS10000F"]}),
        ("C:\\Prestage\\win11-OperatingSystemImage.pkgx", {"OperatingSystemImageId": ["PS100008"]}),
        ("C:\\Prestage\\win11-Package.pkgx", {"PackageId": ["PS10000B", "PS10000D"]}),
    ]
    assert {i.parameters["DistributionPointName"] for i in published} == {"CM01.corp.contoso.com"}
    assert host.closed == 1 and result.written_on == "cm01.corp.contoso.com" and not result.listing
    text = io.StringIO()
    render_prestage.render(result, text)
    assert "wrote on the WinRM host cm01.corp.contoso.com: C:\\Prestage\\win11-Package.pkgx" in text.getvalue()
    assert "\\\\cm01.corp.contoso.com\\C$\\Prestage\\win11-Package.pkgx" in text.getvalue()


def test_a_real_site_without_winrm_says_what_to_configure(work: Path) -> None:
    site = open_site(work / "site.db", read_only=True)
    try:
        with pytest.raises(WinRMUnavailable, match=r"Publish-CMPrestageContent.*site\.winrm\.host"):
            prestage(site, INSTALL, "C:\\p\\x.pkgx", options=_remote(winrm=False))
        with pytest.raises(PrestageError, match="no task sequence"):
            prestage(site, "nope", "C:\\p\\x.pkgx", options=_remote())
    finally:
        site.close()
