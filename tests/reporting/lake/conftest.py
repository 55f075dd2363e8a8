"""The data lake as a consumer sees it: the files in a destination folder, read back."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest


class Lake:
    """A destination folder: its files by name, their events, their Parquet rows."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def files(self) -> dict[str, bytes]:
        """Every file under the folder by its name there, with its bytes."""
        if not self.folder.exists():
            return {}
        return {
            str(path.relative_to(self.folder)): path.read_bytes()
            for path in sorted(self.folder.rglob("*"))
            if path.is_file()
        }

    def names(self) -> list[str]:
        return list(self.files())

    def events(self) -> list[dict]:
        """Every event of every JSON Lines file, in the order of the files and their lines."""
        events = []
        for name, content in self.files().items():
            if name.endswith(".jsonl.gz"):
                events += [json.loads(line) for line in gzip.decompress(content).splitlines()]
        return events

    def rows(self) -> list[dict]:
        """Every row of every Parquet file, in the order of the files."""
        rows = []
        for name in self.names():
            if name.endswith(".parquet"):
                rows += pq.read_table(self.folder / name).to_pylist()
        return rows


@pytest.fixture
def lake(settings, tmp_path) -> Lake:
    """The default destination ("lake") as a folder of this test's own."""
    folder = tmp_path / "lake"
    settings.STORAGES = {
        **settings.STORAGES,
        "lake": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(folder)},
        },
    }
    return Lake(folder)
