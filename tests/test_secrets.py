"""No secret value reaches any output: plans, logs at debug level, journal, state store, site show, exports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
SECRETS = {
    "SCAN_JOIN_PASSWORD": "join-Secret-31415",
    "SCAN_RUNAS_PASSWORD": "runas-Secret-27182",
    "SCAN_ADMIN_PASSWORD": "admin-Secret-16180",
    "SCAN_DYNAMIC_SECRET": "dynamic-Secret-14142",
}
FILE_SECRET = "file-Secret-17320"


def manifests(folder: Path) -> None:
    ts = {**HEAD, "kind": "TaskSequence", "metadata": {"name": "secretive"}, "spec": {
        "name": "Secretive", "steps": [
            {"name": "Join", "type": "JoinDomainOrWorkgroup",
             "settings": {"domain": "corp.contoso.com", "account": "CORP\\join",
                          "password": {"valueFrom": {"env": "SCAN_JOIN_PASSWORD"}}}},
            {"name": "As user", "type": "RunCommandLine",
             "settings": {"commandLine": "whoami", "runAsUser": True, "userName": "CORP\\svc",
                          "userPassword": {"valueFrom": {"env": "SCAN_RUNAS_PASSWORD"}}}},
            {"name": "Rules", "type": "SetDynamicVariables", "settings": {"rules": [
                {"variables": [{"name": "Token", "secret": True, "valueFrom": {"env": "SCAN_DYNAMIC_SECRET"}}]}]}},
        ]}}
    dep = {**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": "secretive-lab"},
           "spec": {"taskSequence": "secretive", "collection": {"name": "OSD Lab"}}}
    coll = {**HEAD, "kind": "CollectionVariables", "metadata": {"name": "lab"},
            "spec": {"collection": {"name": "OSD Lab"}, "variables": [
                {"name": "OSDAdmin", "hidden": True, "valueFrom": {"env": "SCAN_ADMIN_PASSWORD"}}]}}
    comp = {**HEAD, "kind": "ComputerVariables", "metadata": {"name": "pc"},
            "spec": {"computer": {"name": "LAB-PC-042"}, "variables": [
                {"name": "OSDFile", "hidden": True, "valueFrom": {"file": "secrets/file.txt"}}]}}
    folder.mkdir()
    (folder / "estate.yaml").write_text(yaml.safe_dump_all([ts, dep, coll, comp], sort_keys=False))
    (folder / "secrets").mkdir()
    (folder / "secrets" / "file.txt").write_text(FILE_SECRET + "\n")


def run(work: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "reconciler", *args, "--log-level", "debug"], cwd=work,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                            env={**os.environ, **SECRETS, "NO_COLOR": "1"})
    return result.stdout + result.stderr


def test_no_secret_in_any_output_channel(tmp_path: Path) -> None:
    manifests(tmp_path / "manifests")
    outputs = [run(tmp_path, "manifests", "--dry-run", "--output", fmt) for fmt in ("text", "json", "markdown")]
    outputs.append(run(tmp_path, "manifests", "--yes", "--output", "json"))
    assert "Apply complete: 4 applied, 0 failed" in outputs[-1]
    outputs.append(run(tmp_path, "manifests", "--dry-run"))
    assert "No changes" in outputs[-1]
    outputs += [run(tmp_path, "site", "show"), run(tmp_path, "site", "show", "--output", "json"),
                run(tmp_path, "vars", "effective", "--computer", "LAB-PC-042"),
                run(tmp_path, "convert", "--to", "xml", "manifests/estate.yaml"),
                run(tmp_path, "validate", "manifests", "--output", "json")]
    stores = [p.read_bytes() for p in (tmp_path / ".reconcile").glob("state.db*")]
    assert stores and any(b"HighRisk" in s or b"intent" in s for s in stores)  # the journal is in there
    site = b"".join(p.read_bytes() for p in (tmp_path / ".reconcile").glob("site.db*"))
    assert SECRETS["SCAN_JOIN_PASSWORD"].encode() in site  # the site itself keeps the password (SaveToXml)
    for secret in (*SECRETS.values(), FILE_SECRET):
        for out in outputs:
            assert secret not in out
        for store in stores:
            assert secret.encode() not in store
    assert "(sensitive)" in outputs[0]
