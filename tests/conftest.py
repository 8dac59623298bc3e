"""Project-wide fixtures. Server fixtures (redis, celery, sshd, ftp, postgres, chromium) live in
``tests/servers/`` and are registered here as a plugin."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"


@pytest.fixture
def pinnacle_sample(tmp_path: Path) -> Path:
    """A private copy of the real Pinnacle 16.2 sample tree (``../shared/samples``)."""
    source = SAMPLES / "pinnacle-16.2"
    if not source.is_dir():
        pytest.skip(f"sample tree {source} is absent (it ships in shared/, beside the repository)")
    target = tmp_path / "pinnacle-16.2"
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the shared copy is read-only
    return target
