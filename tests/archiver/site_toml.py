"""A site.toml of the shape of docs/contracts.md §6, with its paths moved into a test's tmp folder."""
from __future__ import annotations

from pathlib import Path

import pytest

PASSWORD_ENV = "PDAS_TEST_ARRAY1_PASSWORD"
PASSWORD_VALUE = "never-print-this-9f3c"

SPEC_EXAMPLE = """\
[[institution]]
code = "PUMCH"
name = "Radiation Oncology"
tps = "file://{root}/pinnacle/Patients"
pending_group = "ToArchive"
clinical_groups = ["Clinical"]
non_clinical_groups = ["Research", "Practice", "Training"]
recourse_gap_days = 90
rv = "csv:{root}/rv/first_deliveries.csv"

  [[institution.storage]]
  name = "array-1"
  url = "sftp://archiver@storage-host:22/archive"
  password_env = "{password_env}"
  known_hosts = "{root}/known_hosts"
"""


class SiteToml:
    """Writes variants of the example: ``write(replace={old: new})`` returns the file's path."""

    def __init__(self, root: Path):
        self.root = root
        self.text = SPEC_EXAMPLE.format(root=root, password_env=PASSWORD_ENV)
        (root / "known_hosts").write_text("storage-host ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n")

    def write(self, replace: dict[str, str] | None = None, *, append: str = "", name: str = "site.toml") -> Path:
        text = self.text
        for old, new in (replace or {}).items():
            assert old in text, f"{old!r} is not in the example"
            text = text.replace(old, new)
        path = self.root / name
        path.write_text(text + append, encoding="utf-8")
        return path


def make_site_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SiteToml:
    """For a module's ``site_toml`` fixture: the example in ``tmp_path``, its password variable set."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD_VALUE)
    return SiteToml(tmp_path)
