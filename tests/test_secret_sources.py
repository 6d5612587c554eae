"""Where secrets may come from, how their hashes are kept, how the site keeps them, which values it can hold.

A manifest is written by a pull request author; the process that applies it runs with someone else's files
and environment. These tests hold the rules: file secrets only from the secrets folder, environment
variables only from the allow-list, a valueFrom value always masked, hashes keyed with a key outside the
state store, step passwords sealed in the embedded site, and a bad secret value refusing the whole apply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import git
import pytest
import yaml
from click.testing import CliRunner

from reconciler.apply.executor import ApplyRefused, apply_plan
from reconciler.cli import cli
from reconciler.config import SecretsPolicy, load_config
from reconciler.controller.tick import Controller, ControllerConfig
from reconciler.export import export_site
from reconciler.plan.planner import live_variables_fingerprint, make_plan
from reconciler.secrets import HASH_KEY_FILE, SecretRefused, SecretUnusable, hash_key, read_secret
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.source.loader import load
from reconciler.state import StateStore
from reconciler.validate import validate

HEAD = "apiVersion: configmgr.gitops.io/v1alpha1\n"
PIN = "482913"


def computer_vars(*variables: str, name: str = "lab-pc-042") -> str:
    lines = [HEAD, "kind: ComputerVariables\n", f"metadata: {{name: {name}}}\n", "spec:\n",
             "  computer: {name: LAB-PC-042}\n", "  variables:\n"]
    lines += [f"    - {v}\n" for v in variables]
    return "".join(lines)


def join_sequence(name: str, source: str) -> dict[str, Any]:
    return {"apiVersion": "configmgr.gitops.io/v1alpha1", "kind": "TaskSequence", "metadata": {"name": name},
            "spec": {"name": f"Join {name}", "steps": [
                {"name": "Join", "type": "JoinDomainOrWorkgroup",
                 "settings": {"domain": "corp.contoso.com", "account": "CORP\\join",
                              "password": {"valueFrom": yaml.safe_load(source)}}}]}}


def site_and_state(root: Path) -> tuple[EmbeddedSite, StateStore]:
    site = EmbeddedSite(root / ".reconcile" / "site.db")
    if not site.computers_named("LAB-PC-042"):  # no demo inventory yet (a read holds only computers with variables)
        add_demo_inventory(site)
    return site, StateStore(root / ".reconcile" / "state.db")


def invoke(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1", **(env or {})}, catch_exceptions=False)
    finally:
        os.chdir(cwd)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# -- 1. a manifest cannot reach outside: validate ----------------------------------------------------


def test_validate_refuses_secret_sources_outside_the_secrets_folder_and_the_env_allow_list(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not-a-secret-of-yours\n")
    manifests = tmp_path / "manifests"
    (manifests / "secrets").mkdir(parents=True)
    (manifests / "secrets" / "link.txt").symlink_to(outside)
    (manifests / "secrets" / "pin.txt").write_text(PIN + "\n")
    text = computer_vars(
        "{name: A, valueFrom: {file: ../../../../etc/hostname}}",
        "{name: B, valueFrom: {file: /etc/hostname}}",
        "{name: C, valueFrom: {file: secrets/link.txt}}",
        "{name: D, valueFrom: {env: HOME}}",
        "{name: E, valueFrom: {env: RECONCILE_SECRET_HASH_KEY}}",
        "{name: F, valueFrom: {file: join.txt}}",
        "{name: G, valueFrom: {file: secrets/.reconcile-hash-key}}",
        "{name: Ok1, valueFrom: {file: secrets/pin.txt}}",
        "{name: Ok2, valueFrom: {env: OSD_LAB_PIN}}",
        "{name: Ok3, valueFrom: {env: RECONCILE_SECRET_PIN}}",
    )
    (manifests / "vars.yaml").write_text(text)

    result = invoke(tmp_path, "validate", "manifests", "--output", "json")
    assert result.exit_code == 1, result.output
    findings = {f["path"]: f for f in json.loads(result.stdout)["findings"] if f["rule"].startswith("secret-")}
    expected = {
        "spec.variables[0].valueFrom.file": ("secret-file", "../../../../etc/hostname", "climbs out with '..'"),
        "spec.variables[1].valueFrom.file": ("secret-file", "file: /etc/hostname", "is an absolute path"),
        "spec.variables[2].valueFrom.file": ("secret-file", "secrets/link.txt", "link that leaves the secrets folder"),
        "spec.variables[3].valueFrom.env": ("secret-env", "env: HOME", "may not be read"),
        "spec.variables[4].valueFrom.env": ("secret-env", "RECONCILE_SECRET_HASH_KEY", "may not be read"),
        "spec.variables[5].valueFrom.file": ("secret-file", "file: join.txt", "is not in the secrets folder secrets/"),
        "spec.variables[6].valueFrom.file": ("secret-file", ".reconcile-hash-key", "key of the secret hashes"),
    }
    assert set(findings) == set(expected)
    for path, (rule, needle, words) in expected.items():
        finding = findings[path]
        assert finding["severity"] == "error" and finding["rule"] == rule
        assert finding["file"].endswith("vars.yaml") and finding["line"] == line_of(text, needle), finding
        assert words in finding["message"], finding["message"]
    assert "starting with OSD_, RECONCILE_SECRET_" in findings["spec.variables[3].valueFrom.env"]["message"]
    assert "secrets.env.names in reconcile.yaml" in findings["spec.variables[3].valueFrom.env"]["message"]
    assert "write secrets/join.txt" in findings["spec.variables[5].valueFrom.file"]["message"]
    assert "not-a-secret-of-yours" not in result.output

    # Every plan validates the same way: nothing is planned, nothing read.
    plan = invoke(tmp_path, "manifests", "--dry-run", env={"OSD_LAB_PIN": "1", "RECONCILE_SECRET_PIN": "2"})
    assert plan.exit_code == 1 and "secret-file" not in plan.stdout
    assert "climbs out with '..'" in plan.stderr and "manifests/vars.yaml:" in plan.stderr


def test_reconcile_yaml_names_further_environment_variables_and_the_secrets_folder(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "vars.yaml").write_text(computer_vars("{name: A, valueFrom: {env: LEGACY_PIN}}",
                                                       "{name: B, valueFrom: {file: vault/pin.txt}}"))
    assert invoke(tmp_path, "validate", "manifests").exit_code == 1
    settings = tmp_path / "settings.yaml"  # --config; by default reconcile.yaml in the manifests folder
    settings.write_text("secrets:\n  folder: vault\n  env: {names: [LEGACY_PIN]}\n")
    result = invoke(tmp_path, "validate", "manifests", "--config", str(settings))
    assert result.exit_code == 0, result.output
    settings.write_text("secrets:\n  env: {names: [RECONCILE_SECRET_HASH_KEY]}\n")
    (manifests / "vars.yaml").write_text(computer_vars("{name: A, valueFrom: {env: RECONCILE_SECRET_HASH_KEY}}"))
    reserved = invoke(tmp_path, "validate", "manifests", "--config", str(settings))
    assert reserved.exit_code == 1 and "may not be read" in reserved.output  # the hash key is never a secret


def test_a_plan_made_without_validation_still_reads_nothing_outside(tmp_path: Path) -> None:
    """Defence in depth: a plan from elsewhere (an old plan, a library caller) meets the same rules at read."""
    (tmp_path / "outside.txt").write_text("outside-value-7\n")
    manifests = tmp_path / "manifests"
    (manifests / "secrets").mkdir(parents=True)
    (manifests / "secrets" / "link.txt").symlink_to(tmp_path / "outside.txt")
    site, state = site_and_state(tmp_path)
    for source, words in (("{file: ../outside.txt}", "climbs out"), ("{file: secrets/link.txt}", "leaves the secrets"),
                          ("{env: HOME}", "may not be read"), (f"{{file: {tmp_path}/outside.txt}}", "absolute")):
        (manifests / "vars.yaml").write_text(computer_vars(f"{{name: A, valueFrom: {source}}}"))
        plan = make_plan(load(manifests), site.read(), state)
        assert plan.actions and not plan.blocked
        with pytest.raises(ApplyRefused) as refused:
            apply_plan(plan, site, state, manifests)
        assert words in str(refused.value) and "nothing was applied" in str(refused.value)
        assert "outside-value-7" not in str(refused.value) and os.environ["HOME"] not in str(refused.value)
        assert not site.read().machine_settings


def test_a_controller_following_a_commit_reads_nothing_outside(tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("outside-value-8\n")
    repo_dir = tmp_path / "repo"
    (repo_dir / "manifests").mkdir(parents=True)
    (repo_dir / "manifests" / "vars.yaml").write_text(
        computer_vars("{name: A, valueFrom: {file: ../../outside.txt}}"))
    repo = git.Repo.init(repo_dir, initial_branch="main")
    repo.config_writer().set_value("user", "name", "t").release()
    repo.config_writer().set_value("user", "email", "t@example.com").release()
    repo.index.add(["manifests/vars.yaml"])
    repo.index.commit("a secret from outside")
    work = tmp_path / "work"
    (work / "manifests").mkdir(parents=True)
    site, state = site_and_state(work)
    config = ControllerConfig(repo=str(repo_dir), path="manifests", secrets_base=work / "manifests",
                              cache_dir=work / ".reconcile", settings=load_config(work / "manifests"))
    controller = Controller(config, site, state)
    try:
        result = controller.tick(force=True)
    finally:
        controller.close()
    assert result.outcome == "error" and "climbs out with '..'" in (result.error or "")
    assert "outside-value-8" not in (result.error or "")
    assert not site.read().machine_settings


def test_special_and_oversized_files_are_refused_unread(tmp_path: Path) -> None:
    folder = tmp_path / "manifests" / "secrets"
    folder.mkdir(parents=True)
    policy = SecretsPolicy(folder, within=tmp_path / "manifests")
    os.mkfifo(folder / "fifo")  # opening a FIFO for reading would wait for a writer forever
    with pytest.raises(SecretRefused, match="not a regular file"):
        read_secret({"file": "secrets/fifo"}, policy)
    (folder / "zero").symlink_to("/dev/zero")
    with pytest.raises(SecretRefused, match="leaves the secrets folder"):
        read_secret({"file": "secrets/zero"}, policy)
    (folder / "big.txt").write_bytes(b"x" * 5_000_000)
    with pytest.raises(SecretUnusable, match="5,000,000 bytes"):
        read_secret({"file": "secrets/big.txt"}, policy)
    (folder / "ok.txt").write_bytes(b"\xef\xbb\xbfpass-word\r\n")  # a BOM and a Windows line break
    assert read_secret({"file": "secrets/ok.txt"}, policy) == "pass-word"


def test_a_folder_or_a_path_with_a_control_character_is_refused_with_its_reference(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    (manifests / "secrets" / "folder").mkdir(parents=True)
    policy = SecretsPolicy(manifests / "secrets", within=manifests)
    with pytest.raises(SecretRefused, match="'secrets/folder' is a folder, not a regular file"):
        read_secret({"file": "secrets/folder"}, policy)
    for path in ("secrets/a\0b", "secrets/a\nb"):
        with pytest.raises(SecretRefused, match="holds a control character") as refused:
            read_secret({"file": path}, policy)
        assert "\n" not in str(refused.value) and "\0" not in str(refused.value)

    (manifests / "vars.yaml").write_text(computer_vars(r'{name: A, valueFrom: {file: "secrets/a\0b"}}',
                                                       "{name: B, valueFrom: {file: secrets/folder}}"))
    checked = invoke(tmp_path, "validate", "manifests")
    assert checked.exit_code == 1 and "vars.yaml:7:" in checked.output and "control character" in checked.output
    (manifests / "vars.yaml").write_text(computer_vars("{name: B, valueFrom: {file: secrets/folder}}"))
    applied = invoke(tmp_path, "manifests", "--yes", "--new-state")
    assert applied.exit_code == 1 and "internal error" not in applied.output, applied.output
    assert "'secrets/folder' is a folder" in applied.stderr and "nothing was applied" in applied.stderr


def test_a_secrets_folder_that_links_out_of_the_manifests_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "hostname").write_text("host-value\n")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "secrets").symlink_to(tmp_path / "elsewhere")  # as a checked-out branch could make it
    (manifests / "vars.yaml").write_text(computer_vars("{name: A, valueFrom: {file: secrets/hostname}}"))
    assert invoke(tmp_path, "validate", "manifests").exit_code == 1
    with pytest.raises(SecretRefused, match="link to a folder outside the manifests folder"):
        read_secret({"file": "secrets/hostname"}, load_config(manifests).secrets)
    # The operator may keep secrets elsewhere, saying so on the command line.
    assert read_secret({"file": "secrets/hostname"}, load_config(manifests, None, tmp_path / "elsewhere").secrets) \
        == "host-value"


def test_secrets_dir_reads_secrets_slash_name_from_the_folder_given(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "pin.txt").write_text(PIN + "\n")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDBitLockerPIN, valueFrom: {file: secrets/pin.txt}}"))
    missing = invoke(tmp_path, "manifests", "--yes")
    assert missing.exit_code == 1 and "nothing was applied" in missing.stderr
    result = invoke(tmp_path, "manifests", "--yes", "--secrets-dir", str(vault))
    assert result.exit_code == 0, result.output
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        (resource_id,) = site.read().machine_settings
        assert site.holds_secret(resource_id, "OSDBitLockerPIN", PIN)
    assert (vault / HASH_KEY_FILE).is_file() and not (manifests / "secrets").exists()
    env = invoke(tmp_path, "manifests", "--dry-run", "--refresh-secrets", "--detailed-exitcode",
                 env={"RECONCILE_SECRETS_DIR": str(vault)})
    assert env.exit_code == 0, env.output


# -- 1. valueFrom is always written masked -----------------------------------------------------------


def test_a_value_from_a_secret_source_is_always_written_masked(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDPin, valueFrom: {env: OSD_PIN}}"))
    applied = invoke(tmp_path, "manifests", "--yes", env={"OSD_PIN": PIN})
    assert applied.exit_code == 0, applied.output
    shown = invoke(tmp_path, "site", "show", "--output", "json")
    assert PIN not in shown.output and PIN not in invoke(tmp_path, "site", "show").output
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        (machine,) = site.read().machine_settings.values()
        assert [(v.name, v.masked, v.value) for v in machine.variables] == [("OSDPin", True, None)]

    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDPin, hidden: false, valueFrom: {env: OSD_PIN}}"))
    text = (manifests / "vars.yaml").read_text()
    refused = invoke(tmp_path, "validate", "manifests", "--output", "json")
    (finding,) = json.loads(refused.stdout)["findings"]
    assert (finding["path"], finding["rule"], finding["line"]) == ("spec.variables[0].hidden", "secret-masked",
                                                                 line_of(text, "hidden: false"))
    assert "a value read from a secret source (valueFrom) is always written masked" in finding["message"]
    assert "write the value in the manifest if it is not secret" in finding["message"]


def test_a_secret_written_in_clear_by_an_earlier_version_is_written_again_masked(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDPin, valueFrom: {env: OSD_PIN}}"))
    site, state = site_and_state(tmp_path)
    os.environ["OSD_PIN"] = PIN
    try:
        assert apply_plan(make_plan(load(manifests), site.read(), state), site, state, manifests).ok
        (resource_id,) = site.read().machine_settings
        site.set_computer_variables(resource_id, [("OSDPin", PIN, False)])  # what `hidden: false` used to do
        applied = state.applied()[("ComputerVariables", "lab-pc-042")]
        clear = site.get_machine_settings(resource_id)
        assert clear is not None
        state.record_applied("ComputerVariables", "lab-pc-042", applied.desired_fp,
                             live_variables_fingerprint(clear.variables, None), applied.secrets)
        plan = make_plan(load(manifests), site.read(), state)
        assert [a.verb.value for a in plan.actions] == ["SetVariables"]
        assert apply_plan(plan, site, state, manifests).ok
    finally:
        del os.environ["OSD_PIN"]
    machine = site.get_machine_settings(resource_id)
    assert machine is not None and [v.masked for v in machine.variables] == [True]


# -- 8. keyed hashes -----------------------------------------------------------------------------------


def _stored_hash(state: StateStore) -> str:
    return state.applied()[("ComputerVariables", "lab-pc-042")].secrets["osdbitlockerpin"]["hash"]


def test_the_stored_hash_of_a_pin_is_keyed_with_a_key_outside_the_state_store(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    (manifests / "secrets").mkdir(parents=True)
    (manifests / "secrets" / "pin.txt").write_text(PIN + "\n")
    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDBitLockerPIN, valueFrom: {file: secrets/pin.txt}}"))
    dry = invoke(tmp_path, "manifests", "--dry-run")
    assert dry.exit_code == 0 and not (manifests / "secrets" / HASH_KEY_FILE).exists()  # a plan reads no secret
    assert invoke(tmp_path, "manifests", "--yes").exit_code == 0

    key_file = manifests / "secrets" / HASH_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = bytes.fromhex(key_file.read_text())
    state = StateStore(tmp_path / ".reconcile" / "state.db")
    stored = _stored_hash(state)
    assert stored == hmac.new(key, PIN.encode(), hashlib.sha256).hexdigest()
    # The audit's attack: every 6-digit PIN under the store's own salt, and unsalted. Nothing matches.
    salt = state.salt
    assert not any(hashlib.sha256(salt + f"{n:06d}".encode()).hexdigest() == stored for n in range(1_000_000))
    assert stored != hashlib.sha256(PIN.encode()).hexdigest()
    assert key.hex().encode() not in b"".join(p.read_bytes() for p in (tmp_path / ".reconcile").glob("state.db*"))

    # The same key is used next time: an unchanged PIN is no change.
    again = invoke(tmp_path, "manifests", "--dry-run", "--refresh-secrets", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_the_hash_key_may_come_from_the_environment(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDBitLockerPIN, valueFrom: {env: OSD_PIN}}"))
    key = os.urandom(32)
    import base64

    for spelled in (key.hex(), base64.b64encode(key).decode()):
        (tmp_path / ".reconcile").mkdir(exist_ok=True)
        for stale in (tmp_path / ".reconcile").iterdir():
            stale.unlink()
        result = invoke(tmp_path, "manifests", "--yes", env={"OSD_PIN": PIN, "RECONCILE_SECRET_HASH_KEY": spelled})
        assert result.exit_code == 0, result.output
        assert _stored_hash(StateStore(tmp_path / ".reconcile" / "state.db")) == hmac.new(
            key, PIN.encode(), hashlib.sha256).hexdigest()
        assert not (manifests / "secrets").exists()
    short = invoke(tmp_path, "manifests", "--yes", "--refresh-secrets",
                   env={"OSD_PIN": "1", "RECONCILE_SECRET_HASH_KEY": "abcd"})
    assert short.exit_code == 1 and "needs at least 16" in short.output and "abcd" not in short.output


def test_concurrent_first_uses_agree_on_one_key(tmp_path: Path) -> None:
    policy = SecretsPolicy(tmp_path / "secrets")
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def first_use() -> None:
        barrier.wait()
        keys.append(hash_key(policy))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in (tmp_path / "secrets").iterdir()) == [".gitignore", HASH_KEY_FILE]
    assert (tmp_path / "secrets" / ".gitignore").read_text() == "*\n"  # a folder made here stays out of Git


def test_salted_hashes_of_an_earlier_version_are_dropped_once(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDBitLockerPIN, valueFrom: {env: OSD_PIN}}"))
    (manifests / "ts.yaml").write_text(yaml.safe_dump(join_sequence("join", "{env: OSD_JOIN}")))
    env = {"OSD_PIN": PIN, "OSD_JOIN": "join-pass-1"}
    assert invoke(tmp_path, "manifests", "--yes", env=env).exit_code == 0
    db_path = tmp_path / ".reconcile" / "state.db"

    # What an earlier version left: SHA-256 over the salt and the value, no record of keyed hashes.
    state = StateStore(db_path)
    salt = state.salt
    state.close()
    old = {PIN: hashlib.sha256(salt + PIN.encode()).hexdigest(),
           "join-pass-1": hashlib.sha256(salt + b"join-pass-1").hexdigest()}
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT kind, name, secrets FROM applied WHERE secrets != '{}'").fetchall()
        for kind, name, stored in rows:
            data = json.loads(stored)
            for key, value in data.items():
                if isinstance(value, dict):
                    value["hash"] = old[PIN]
                elif not key.startswith("@"):
                    data[key] = old["join-pass-1"]
            db.execute("UPDATE applied SET secrets = ? WHERE kind = ? AND name = ?", (json.dumps(data), kind, name))
        db.execute("DELETE FROM meta WHERE key = 'secret_hashes'")
    assert old[PIN].encode() in db_path.read_bytes() + db_path.with_name("state.db-wal").read_bytes()

    StateStore(db_path).close()  # opening migrates
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob("state.db*"))
    assert old[PIN].encode() not in raw and old["join-pass-1"].encode() not in raw
    migrated = StateStore(db_path).applied()
    assert migrated[("ComputerVariables", "lab-pc-042")].secrets == {
        "osdbitlockerpin": {"ref": "env:OSD_PIN", "hash": ""}}
    assert migrated[("TaskSequence", "join")].secrets["env:OSD_JOIN"] == ""

    quiet = invoke(tmp_path, "manifests", "--dry-run", "--detailed-exitcode", env=env)
    assert quiet.exit_code == 0, quiet.output  # a normal plan never compares hashes: nothing changes
    refresh = invoke(tmp_path, "manifests", "--dry-run", "--refresh-secrets", "--output", "json", env=env)
    assert {(a["kind"], a["reason"]) for a in json.loads(refresh.stdout)["actions"]} == {
        ("ComputerVariables", "secret"), ("TaskSequence", "secret")}
    assert invoke(tmp_path, "manifests", "--yes", "--refresh-secrets", env=env).exit_code == 0
    key = bytes.fromhex((manifests / "secrets" / HASH_KEY_FILE).read_text())
    assert _stored_hash(StateStore(db_path)) == hmac.new(key, PIN.encode(), hashlib.sha256).hexdigest()
    done = invoke(tmp_path, "manifests", "--dry-run", "--refresh-secrets", "--detailed-exitcode", env=env)
    assert done.exit_code == 0, done.output


# -- 9. step passwords in the embedded site ------------------------------------------------------------


def test_the_embedded_site_keeps_step_passwords_write_only(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "ts.yaml").write_text(yaml.safe_dump(join_sequence("join", "{env: OSD_JOIN}")))
    site, state = site_and_state(tmp_path)
    os.environ["OSD_JOIN"] = "join-pass-42"
    try:
        assert apply_plan(make_plan(load(manifests), site.read(), state), site, state, manifests).ok
    finally:
        del os.environ["OSD_JOIN"]
    (live,) = site.read().task_sequences.values()
    assert live.id is not None and "join-pass-42" not in live.sequence
    assert b"join-pass-42" not in b"".join(p.read_bytes() for p in (tmp_path / ".reconcile").glob("site.db*"))
    assert site.holds_secret(live.id, "DomainPassword", "join-pass-42")
    assert site.holds_secret(live.id, None, "join-pass-42") and not site.holds_secret(live.id, None, "join-pass-43")
    assert make_plan(load(manifests), site.read(), state).actions == []  # the sealed form is no drift

    # A console edit writes back what it read: the password stays as it was.
    from dataclasses import replace

    site.update_task_sequence(live.id, replace(live, description="edited in the console"))
    assert site.holds_secret(live.id, "DomainPassword", "join-pass-42")
    # An export still knows a password is set there, and asks for it.
    exported = export_site(site.read(), StateStore(tmp_path / "export-state.db"), tmp_path / "exported")
    ((_, env),) = exported.secrets
    assert env.startswith("OSD_TS_") and env.endswith("DOMAINPASSWORD")


def test_an_earlier_site_file_with_clear_passwords_is_sealed_when_opened(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "ts.yaml").write_text(yaml.safe_dump(join_sequence("join", "{env: OSD_JOIN}")))
    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDBitLockerPIN, valueFrom: {env: OSD_PIN}}"))
    env = {"OSD_JOIN": "join-pass-77", "OSD_PIN": PIN}
    assert invoke(tmp_path, "manifests", "--yes", env=env).exit_code == 0
    db_path = tmp_path / ".reconcile" / "site.db"
    with EmbeddedSite(db_path) as site:
        (ts_id,) = site.read().task_sequences
        token = site._seal("join-pass-77")
        pin_token = site._seal(PIN)
    with sqlite3.connect(db_path) as db:  # as an earlier version kept them
        db.execute("UPDATE task_sequences SET sequence = replace(sequence, ?, 'join-pass-77')", (token,))
        db.execute("UPDATE computer_variables SET value = ? WHERE value = ?", (PIN, pin_token))
        db.execute("DELETE FROM meta WHERE key = 'secrets_sealed'")
    assert b"join-pass-77" in db_path.read_bytes() + db_path.with_name("site.db-wal").read_bytes()

    with EmbeddedSite(db_path) as site:
        assert site.holds_secret(ts_id, "DomainPassword", "join-pass-77")
        (resource_id,) = site.read().machine_settings
        assert site.holds_secret(resource_id, "OSDBitLockerPIN", PIN)
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob("site.db*"))
    assert b"join-pass-77" not in raw and f">{PIN}<".encode() not in raw
    plan = invoke(tmp_path, "manifests", "--dry-run", "--detailed-exitcode", env=env)
    assert plan.exit_code == 0, plan.output


# -- 10. secret values ConfigMgr cannot hold -------------------------------------------------------------


def test_a_secret_that_would_break_the_xml_refuses_the_whole_apply_before_any_write(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    docs = [join_sequence(f"ts-{i:02d}", f"{{env: OSD_JOIN_{i:02d}}}") for i in range(20)]
    (manifests / "ts.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    env = {f"OSD_JOIN_{i:02d}": f"pass-{i:02d}" for i in range(20)}
    env["OSD_JOIN_13"] = "first-line\nsecond-line"
    result = invoke(tmp_path, "manifests", "--yes", env=env)
    assert result.exit_code == 1
    message = result.stderr
    assert "env:OSD_JOIN_13" in message and "TaskSequence/ts-13 (step 'Join', DomainPassword)" in message
    assert "line break (U+000A)" in message and "nothing was applied" in message
    assert "manifests/ts.yaml:" in message
    assert "first-line" not in result.output and "second-line" not in result.output
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        assert site.read().task_sequences == {}


@pytest.mark.parametrize(("content", "words"), [
    ("bell\x07", "a control character (U+0007)"),
    ("tab\there", "a tab (U+0009)"),
    ("x" * 4001, "4,001 characters"),
    ("half\ufffe", "U+FFFE"),
])
def test_file_and_variable_secrets_are_checked_before_the_first_write(tmp_path: Path, content: str,
                                                                     words: str) -> None:
    manifests = tmp_path / "manifests"
    (manifests / "secrets").mkdir(parents=True)
    (manifests / "secrets" / "bad.txt").write_text(content + "\n")
    (manifests / "ts.yaml").write_text(yaml.safe_dump(join_sequence("fine", "{env: OSD_JOIN}")))
    (manifests / "vars.yaml").write_text(computer_vars("{name: OSDBad, valueFrom: {file: secrets/bad.txt}}"))
    site, state = site_and_state(tmp_path)
    plan = make_plan(load(manifests), site.read(), state)
    os.environ["OSD_JOIN"] = "fine-pass"
    try:
        with pytest.raises(ApplyRefused) as refused:
            apply_plan(plan, site, state, manifests)
    finally:
        del os.environ["OSD_JOIN"]
    message = str(refused.value)
    assert "file:secrets/bad.txt" in message and "ComputerVariables/lab-pc-042 (variable OSDBad)" in message
    assert words in message and content not in message
    assert site.read().task_sequences == {} and not site.read().machine_settings
    assert state.journal() == []


def test_validate_with_no_settings_checks_spelling_only(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "vars.yaml").write_text(computer_vars("{name: A, valueFrom: {file: ../x}}",
                                                       "{name: B, valueFrom: {file: secrets/x}}"))
    findings = [f for f in validate(load(manifests)) if f.rule == "secret-file"]
    assert [f.path for f in findings] == ["spec.variables[0].valueFrom.file"]
