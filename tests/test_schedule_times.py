"""A deployment's availableAt and expiresAt: written alike (both with an offset or both without), then ordered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

HEAD = """\
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {name: win11}
spec:
  name: Windows 11
  type: Custom
  steps: []
---
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequenceDeployment
metadata: {name: win11-pilot}
spec:
  taskSequence: win11
  collection: {name: OSD Pilot}
  schedule:
"""


def _validate(tmp_path: Path, schedule: str, *args: str) -> tuple[int, str]:
    folder = tmp_path / "manifests"
    folder.mkdir(exist_ok=True)
    (folder / "pilot.yaml").write_text(HEAD + schedule)
    result = CliRunner().invoke(cli, ["validate", str(folder), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


#: Line 17 of pilot.yaml is the schedule's second line: expiresAt in each case below.
MIXED = [
    ('    availableAt: "2026-12-01T08:00:00"\n    expiresAt: "2026-12-05T08:00:00Z"\n',
     "2026-12-05T08:00:00+00:00", "2026-12-01T08:00:00"),
    ('    availableAt: "2026-12-01T08:00:00+02:00"\n    expiresAt: "2026-12-05T08:00:00"\n    utc: true\n',
     "2026-12-05T08:00:00", "2026-12-01T08:00:00+02:00"),
]


@pytest.mark.parametrize(("schedule", "expires", "available"), MIXED, ids=["naive-then-aware", "aware-then-naive"])
def test_one_time_with_an_offset_and_one_without_is_one_finding_at_expires_at(
        tmp_path: Path, schedule: str, expires: str, available: str) -> None:
    code, output = _validate(tmp_path, schedule)
    assert code == 1
    errors = [line for line in output.splitlines() if "error" in line.lower() and "pilot.yaml" in line]
    assert len(errors) == 1, output
    (line,) = errors
    assert "pilot.yaml:17" in line and "spec.schedule.expiresAt" in line, line
    assert expires in line and available in line, line
    assert "both with an offset or both without" in line, line

    code, output = _validate(tmp_path, schedule, "--output", "json")
    report = json.loads(output)
    (finding,) = [f for f in report["findings"] if f["severity"] == "error"]
    assert (finding["line"], finding["path"], finding["rule"]) == (17, "spec.schedule.expiresAt",
                                                                   "schedule-mixed-offsets")


@pytest.mark.parametrize("schedule", [
    '    availableAt: "2026-12-01T08:00:00"\n    expiresAt: "2026-12-05T08:00:00"\n',
    '    availableAt: "2026-12-01T08:00:00Z"\n    expiresAt: "2026-12-05T08:00:00+01:00"\n    utc: true\n',
    '    expiresAt: "2026-12-05T08:00:00Z"\n',
], ids=["both-naive", "both-aware", "only-expires"])
def test_times_written_alike_are_valid(tmp_path: Path, schedule: str) -> None:
    code, output = _validate(tmp_path, schedule)
    assert code == 0, output


def test_an_expiry_before_the_start_names_both_times_at_expires_at(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, '    availableAt: "2026-12-05T08:00:00Z"\n'
                                       '    expiresAt: "2026-12-05T09:00:00+02:00"\n    utc: true\n')
    assert code == 1
    (line,) = [x for x in output.splitlines() if "pilot.yaml" in x]
    assert "pilot.yaml:17" in line and "spec.schedule.expiresAt" in line, line
    assert "2026-12-05T09:00:00+02:00" in line and "2026-12-05T08:00:00+00:00" in line, line
    assert "later than availableAt" in line, line
