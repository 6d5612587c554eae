"""Site options: where each setting comes from (command line, environment, reconcile.yaml), what is refused and
how it is named, read-only refusing before the first request, and the state store of a remote site."""

from __future__ import annotations

import shutil
import socket
import textwrap
from pathlib import Path

import pytest

from reconciler.config import ConfigError, load_config
from reconciler.secrets import SecretRefused, read_secret, source_problem
from reconciler.site.options import (
    Auth,
    Credentials,
    SiteArguments,
    SiteOptionsError,
    WinRMAuth,
    default_state_file,
    normalize_site_url,
    resolve_site_options,
)
from reconciler.workspace import state_path_for
from tests.conftest import REPO, run_cli

URL = "https://cm01.corp.contoso.com/AdminService"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _config(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "manifests"
    root.mkdir(exist_ok=True)
    (root / "reconcile.yaml").write_text(textwrap.dedent(text))
    return root


def _resolve(root: Path | None = None, arguments: SiteArguments | None = None,
             environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    config = load_config(root) if root is not None else None
    return resolve_site_options(arguments or SiteArguments(), config.site if config else None,
                                config.secrets if config else None, environ or {})


def test_the_site_section_gives_url_ca_auth_read_only_and_credentials_from_value_from(tmp_path: Path) -> None:
    root = _config(tmp_path, """\
        site:
          url: https://CM01.corp.contoso.com/AdminService/
          caBundle: certs/sms-root.pem
          auth: ntlm
          readOnly: true
          username: CORP\\svc-osd
          password: {valueFrom: {file: secrets/cm-password}}
        """)
    (root / "certs").mkdir()
    (root / "certs" / "sms-root.pem").write_text(PEM)
    (root / "secrets").mkdir()
    (root / "secrets" / "cm-password").write_text("s3cret-from-file\n")
    target, options = _resolve(root)
    assert target == options.url == URL
    assert options.ca_bundle == root / "certs" / "sms-root.pem" and options.verify == str(root / "certs/sms-root.pem")
    assert options.auth is Auth.NTLM and options.read_only
    assert options.credentials.username == "CORP\\svc-osd" and options.credentials.password == "s3cret-from-file"
    assert options.origins["read_only"].endswith("reconcile.yaml:5: site.readOnly")
    assert "s3cret" not in repr(options) and "s3cret" not in options.describe_auth()
    assert "password from " in options.describe_auth() and "reconcile.yaml:7: site.password" in options.describe_auth()


def test_the_command_line_wins_over_the_file_and_the_environment_over_the_file(tmp_path: Path) -> None:
    root = _config(tmp_path, """\
        site:
          url: https://cm01.corp.contoso.com/AdminService
          auth: kerberos
          username: CORP\\from-file
          password: {valueFrom: {env: RECONCILE_SECRET_CM}}
        """)
    target, options = _resolve(root, SiteArguments(site="https://cm02.corp.contoso.com/AdminService", auth="ntlm"),
                               {"RECONCILE_SITE_USERNAME": "CORP\\from-env", "RECONCILE_SITE_PASSWORD": "pw-env",
                                "RECONCILE_SECRET_CM": "pw-file"})
    assert target == "https://cm02.corp.contoso.com/AdminService" and options.auth is Auth.NTLM
    assert options.credentials.username == "CORP\\from-env" and options.credentials.password == "pw-env"
    assert options.origins == {"url": "--site", "auth": "--auth"}


def test_a_file_site_named_on_the_command_line_wins_over_the_files_url(tmp_path: Path) -> None:
    root = _config(tmp_path, f"site: {{url: {URL}, readOnly: true}}\n")
    target, options = _resolve(root, SiteArguments(site=str(tmp_path / "site.db")))
    assert target == tmp_path / "site.db" and options.url is None and options.read_only


@pytest.mark.parametrize(("text", "message"), [
    ("site:\n  url: http://cm01/AdminService\n", "reconcile.yaml:2: site.url: site URL 'http://cm01/AdminService' "
                                                 "must start with https://"),
    ("site:\n  url: https://cm01/api\n", "reconcile.yaml:2: site.url: site URL 'https://cm01/api' does not end with "
                                         "/AdminService"),
    ("site:\n  url: https://cm01/AdminService\n  password: hunter2\n",
     "reconcile.yaml:3: site.password: holds a plaintext credential"),
    ("site:\n  winrm:\n    host: cm01\n    port: 0\n", "reconcile.yaml:4: site.winrm.port: Input should be greater"),
    ("site:\n  auth: basic\n", "reconcile.yaml:2: site.auth: Input should be 'negotiate', 'kerberos', 'ntlm' or "
                               "'bearer'"),
    ("site:\n  passwd: {valueFrom: {env: X}}\n", "reconcile.yaml:2: site.passwd: unknown setting; allowed: "),
])
def test_a_bad_site_setting_names_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    root = _config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_credential_source_outside_the_secrets_policy_is_refused_naming_its_line(tmp_path: Path) -> None:
    root = _config(tmp_path, "site:\n  url: https://cm01/AdminService\n  username: CORP\\svc\n"
                             "  password: {valueFrom: {env: HOME}}\n")
    with pytest.raises(SiteOptionsError, match=r"reconcile\.yaml:4: site\.password\.valueFrom: environment variable "
                                               r"'HOME' may not be read"):
        _resolve(root, environ={"HOME": "/root"})
    root = _config(tmp_path, "site:\n  url: https://cm01/AdminService\n  username: CORP\\svc\n"
                             "  password: {valueFrom: {env: RECONCILE_SECRET_CM}}\n")
    with pytest.raises(SiteOptionsError, match="RECONCILE_SECRET_CM is not set"):
        _resolve(root)


def test_manifests_may_never_read_the_sites_own_credentials(tmp_path: Path) -> None:
    root = _config(tmp_path, "site:\n  url: https://cm01/AdminService\n  username: CORP\\svc\n"
                             "  password: {valueFrom: {file: ./secrets/cm-password}}\n"
                             "secrets: {env: {names: [RECONCILE_SITE_PASSWORD]}}\n")
    (root / "secrets").mkdir()
    (root / "secrets" / "cm-password").write_text("admin-pw")
    (root / "secrets" / "innocent.txt").symlink_to("cm-password")
    policy = load_config(root).secrets
    assert "site's own credentials" in (source_problem({"file": "secrets/cm-password"}, policy) or "")
    with pytest.raises(SecretRefused, match="site's own credentials"):
        read_secret({"file": "secrets/innocent.txt"}, policy)  # a link to it inside the folder too
    assert source_problem({"env": "RECONCILE_SITE_PASSWORD"}, policy) is not None  # listed, still reserved
    _, options = _resolve(root)  # the site itself reads it
    assert options.credentials.password == "admin-pw"


@pytest.mark.parametrize(("arguments", "environ", "message"), [
    (SiteArguments(site=URL, auth="ntlm"), {}, "--auth ntlm needs a user name and password: set "
                                               "RECONCILE_SITE_USERNAME"),
    (SiteArguments(site=URL, auth="bearer"), {}, "--auth bearer needs a token: set RECONCILE_SITE_TOKEN"),
    (SiteArguments(site=URL), {"RECONCILE_SITE_USERNAME": "CORP\\svc"},
     "RECONCILE_SITE_USERNAME is set but RECONCILE_SITE_PASSWORD"),
    (SiteArguments(site=URL, insecure=True, ca_bundle=Path("ca.pem")), {}, "contradict"),
    (SiteArguments(site="site.db", ca_bundle=Path("ca.pem")), {}, "--ca-bundle is for a site URL"),
    (SiteArguments(auth="ntlm"), {}, "--auth is for a site URL (--site https://<SMS Provider>/AdminService); no site "
                                     "URL is set"),
    (SiteArguments(site="https://svc:Sup3rS3cret@cm01/AdminService"), {}, "credentials never go in a URL"),
    (SiteArguments(site=URL, ca_bundle=Path("/nonexistent/ca.pem")), {}, "--ca-bundle: CA bundle '/nonexistent/ca.pem'"
                                                                         " is not a file"),
])
def test_settings_that_cannot_work_are_refused_before_any_request(arguments: SiteArguments, environ: dict[str, str],
                                                                  message: str) -> None:
    with pytest.raises(SiteOptionsError) as caught:
        _resolve(None, arguments, environ)
    assert message in str(caught.value)
    assert "Sup3rS3cret" not in str(caught.value)


def test_the_ca_bundle_comes_from_the_option_then_the_file_then_ssl_cert_file(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_text(PEM)
    (tmp_path / "b.pem").write_text(PEM)
    (tmp_path / "not-pem.cer").write_bytes(b"\x30\x82\x01\x0a")
    environ = {"SSL_CERT_FILE": str(tmp_path / "b.pem")}
    _, options = _resolve(None, SiteArguments(site=URL), environ)
    assert options.ca_bundle == tmp_path / "b.pem" and options.origins["ca_bundle"] == "SSL_CERT_FILE"
    _, options = _resolve(None, SiteArguments(site=URL, ca_bundle=tmp_path / "a.pem"), environ)
    assert options.ca_bundle == tmp_path / "a.pem"
    root = _config(tmp_path, f"site: {{url: {URL}, caBundle: ../a.pem}}\n")
    _, options = _resolve(root, environ=environ)
    assert options.ca_bundle == tmp_path / "a.pem"
    with pytest.raises(SiteOptionsError, match=r"holds no PEM certificate.*openssl x509 -inform der"):
        _resolve(None, SiteArguments(site=URL, ca_bundle=tmp_path / "not-pem.cer"))
    _, options = _resolve(None, SiteArguments(site=URL, insecure=True), environ)
    assert options.verify is False and options.ca_bundle is None
    assert any("--insecure" in line and "not verified" in line for line in options.notices())


def test_bearer_tokens_come_from_the_environment_and_never_show(tmp_path: Path) -> None:
    _, options = _resolve(None, SiteArguments(site=URL, auth="bearer"), {"RECONCILE_SITE_TOKEN": "eyJ0eXAi.secret"})
    assert options.credentials.token == "eyJ0eXAi.secret"
    assert "eyJ0" not in repr(options) and options.describe_auth() == "bearer: a bearer token from RECONCILE_SITE_TOKEN"
    _, unused = _resolve(None, SiteArguments(site=URL), {"RECONCILE_SITE_TOKEN": "eyJ0eXAi.secret"})
    assert any("token is not used" in line for line in unused.notices())


def test_winrm_settings_default_their_port_and_borrow_the_sites_account(tmp_path: Path) -> None:
    root = _config(tmp_path, f"""\
        site:
          url: {URL}
          winrm: {{host: CM01.corp.contoso.com, ssl: false, siteCode: ps1}}
        """)
    _, options = _resolve(root, environ={"RECONCILE_SITE_USERNAME": "CORP\\svc", "RECONCILE_SITE_PASSWORD": "pw"})
    winrm = options.winrm
    assert winrm is not None
    assert (winrm.host, winrm.port, winrm.ssl, winrm.auth, winrm.site_code) == (
        "cm01.corp.contoso.com", 5985, False, WinRMAuth.NEGOTIATE, "PS1")
    assert winrm.credentials.username == "CORP\\svc" and winrm.endpoint == "http://cm01.corp.contoso.com:5985/wsman"
    _, own = _resolve(root, environ={"RECONCILE_WINRM_USERNAME": "CORP\\winrm", "RECONCILE_WINRM_PASSWORD": "pw2"})
    assert own.winrm is not None and own.winrm.credentials.username == "CORP\\winrm"
    root = _config(tmp_path, f"site: {{url: {URL}, winrm: {{host: cm01, auth: credssp}}}}\n")
    with pytest.raises(SiteOptionsError, match=r"reconcile\.yaml:1: site\.winrm\.auth: WinRM credssp needs"):
        _resolve(root)


def test_credentials_never_show_in_their_repr() -> None:
    credentials = Credentials("CORP\\svc", "hunter2", "tok3n")
    assert "hunter2" not in repr(credentials) and "tok3n" not in repr(credentials)


def test_a_remote_sites_state_store_is_named_after_its_host() -> None:
    assert state_path_for(URL) == Path(".reconcile/cm01.corp.contoso.com.state.db")
    assert default_state_file("https://cm01.corp.contoso.com:8443/AdminService") == Path(
        ".reconcile/cm01.corp.contoso.com_8443.state.db")
    cmg = default_state_file("https://cmg.contoso.cloudapp.net/CCM_Proxy_ServerAuth/72057594037927939/AdminService")
    assert cmg.parent == Path(".reconcile") and cmg.name.startswith("cmg.contoso.cloudapp.net-")
    assert normalize_site_url("https://CM01/AdminService//") == "https://cm01/AdminService"


# -- on the command line ----------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    assert run_cli("site", "init", "--demo", "--site", "site.db", cwd=tmp_path).returncode == 0
    return tmp_path


def test_read_only_plans_but_refuses_to_apply_and_changes_nothing(workdir: Path) -> None:
    before = (workdir / "site.db").read_bytes()
    plan = run_cli("plan", "manifests", "--site", "site.db", "--read-only", "--new-state", cwd=workdir)
    assert plan.returncode == 0, plan
    applied = run_cli("apply", "manifests", "--site", "site.db", "--read-only", "--yes", "--new-state", cwd=workdir)
    assert applied.returncode == 1
    assert "site site.db is read-only (--read-only): 'reconcile apply' would write to it, so nothing was sent" \
        in applied.stderr
    assert (workdir / "site.db").read_bytes() == before
    controller = run_cli("controller", "--repo", ".", "--site", "site.db", "--read-only", "--once", cwd=workdir)
    assert controller.returncode == 1 and "--no-self-heal only reports drift" in controller.stderr


def test_site_read_only_in_the_settings_file_refuses_apply_naming_its_line(workdir: Path) -> None:
    (workdir / "manifests" / "reconcile.yaml").write_text("site:\n  readOnly: true\n")
    applied = run_cli("apply", "manifests", "--site", "site.db", "--yes", "--new-state", cwd=workdir)
    assert applied.returncode == 1
    assert "manifests/reconcile.yaml:2: site.readOnly" in applied.stderr


def test_a_read_only_apply_to_a_url_sends_no_request(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = run_cli("apply", "manifests", "--site", f"https://127.0.0.1:{port}/AdminService", "--read-only",
                         "--yes", cwd=tmp_path)
        assert result.returncode == 1 and "is read-only (--read-only)" in result.stderr, result
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


def test_insecure_warns_on_every_run(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    for _ in range(2):
        result = run_cli("plan", "manifests", "--site", "https://127.0.0.1:9/AdminService", "--insecure",
                         "--read-only", cwd=tmp_path)
        assert "warning: --insecure: the TLS certificate of https://127.0.0.1:9/AdminService is not verified" \
            in result.stderr


def test_a_url_is_kept_whole_by_every_command_that_takes_site(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    for command in (["plan", "manifests"], ["status"], ["history"], ["export", "--out", "out"],
                    ["vars", "effective", "--computer", "LAB-PC-042", "manifests"], ["unlock", "x", "--yes"],
                    ["site", "show"]):
        result = run_cli(*command, "--site", "https://cm01.invalid/AdminService", "--auth", "ntlm", cwd=tmp_path)
        assert result.returncode == 1, result
        assert "--auth ntlm needs a user name and password" in result.stderr, result  # the URL reached the options
        assert "https:/cm01" not in result.stderr


def test_state_commands_find_a_remote_sites_store_by_its_url(tmp_path: Path) -> None:
    result = run_cli("state", "check", "--site", URL + "/", cwd=tmp_path)
    assert result.returncode == 1
    assert "state store .reconcile/cm01.corp.contoso.com.state.db: the file does not exist" in result.stdout
