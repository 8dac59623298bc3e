"""A small real file system that fills up: a tmpfs mounted for one test (needs root)."""
from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def mounted_tmpfs(folder: Path, size: str, *, owner: str | None = None, why_skipped: str = "") -> Iterator[Path]:
    """Mount a ``size`` tmpfs on ``folder`` (created), owned by the account ``owner`` if given, and unmount it
    afterwards. Where mounting is refused (not root) the test is skipped with the reason and ``why_skipped``."""
    options = f"size={size}"
    if owner is not None:
        import pwd

        account = pwd.getpwnam(owner)
        options += f",uid={account.pw_uid},gid={account.pw_gid}"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}){why_skipped}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
