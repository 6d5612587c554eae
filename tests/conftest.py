from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
if not CORPUS.exists():  # CI clones the repository with shared/ beside it
    CORPUS = Path("/work/shared/corpus")


def corpus_xml_files() -> list[Path]:
    return sorted((CORPUS / "ts-xml").glob("*.xml"))


def corpus_zip_objects() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted((CORPUS / "zips").glob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("SMS_TaskSequencePackage/") and name.endswith("/object.xml"):
                    out.append((f"{path.name}:{name}", archive.read(name)))
    return out


@pytest.fixture
def reconcile_cmd() -> list[str]:
    return [sys.executable, "-m", "reconciler"]
