"""Listing a folder target while other workers upload: a temporary file that vanishes between reading
the folder and its stat is skipped, never a failed listing (issue #19, defect 4)."""
from __future__ import annotations

import os

from connectors.storage.local import FileStorage


def test_an_entry_that_vanishes_during_the_listing_is_skipped(tmp_path, monkeypatch):
    (tmp_path / "A_0001_20240101000000.tar.gz").write_bytes(b"archive")
    (tmp_path / ".B_0002_20240101000000.tar.gz.1234.part").write_bytes(b"half")
    real_scandir = os.scandir

    class Vanishing:
        """The other worker's temporary: renamed away after the folder was read, before its stat."""

        def __init__(self, entry):
            self._entry, self.name = entry, entry.name

        def is_file(self, follow_symlinks=True):
            return True

        def stat(self, follow_symlinks=True):
            raise FileNotFoundError(2, "No such file or directory")

    class Listing:
        def __init__(self, path):
            self._it = real_scandir(path)

        def __enter__(self):
            return (Vanishing(e) if e.name.endswith(".part") else e for e in self._it)

        def __exit__(self, *exc):
            self._it.close()

    monkeypatch.setattr(os, "scandir", Listing)
    with FileStorage(tmp_path) as backend:
        assert [(f.name, f.size) for f in backend.list_files()] == [("A_0001_20240101000000.tar.gz", 7)]
