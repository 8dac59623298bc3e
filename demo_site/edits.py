"""Changing a written tree afterwards, as a later save or a crash does.

The writers in ``tree.py`` and ``rv.py`` give every file fixed content and a fixed mtime. Tests of
change detection and of broken files start from such a tree and then::

    truncate_file(patient / "Patient", after='PlanName = "B";')  # a killed save: ends mid-block
    truncate_file(patient / "Patient", keep=60)                    # a full disk: the first 60 bytes
    edit_file(patient / "Plan_0" / "plan.roi", append=b"// edited\\n")  # a save: new bytes, later mtime
"""
from __future__ import annotations

import os
from pathlib import Path


def truncate_file(path: Path, *, keep: int | None = None, after: str | None = None) -> None:
    """Cut ``path`` after its first ``keep`` bytes, or just after the first ``after`` (UTF-8 bytes).

    Exactly one of the two is given. The mtime becomes now, as a crashed write leaves it.
    Raises ``ValueError`` when ``after`` is not in the file.
    """
    if (keep is None) == (after is None):
        raise ValueError("give exactly one of keep= and after=")
    data = Path(path).read_bytes()
    if after is not None:
        marker = after.encode("utf-8")
        at = data.find(marker)
        if at < 0:
            raise ValueError(f"{after!r} is not in {path}")
        keep = at + len(marker)
    Path(path).write_bytes(data[:keep])


def edit_file(path: Path, *, append: bytes = b"", seconds_later: float = 10.0) -> None:
    """Save ``path`` again: ``append`` at its end (if any) and an mtime ``seconds_later`` than before.

    The mtime is moved from the file's own, not set to now, so a tree with fixed mtimes stays
    reproducible and the change is always visible to a (path, size, mtime) fingerprint.
    """
    path = Path(path)
    before = path.stat()
    if append:
        with path.open("ab") as handle:
            handle.write(append)
    mtime_ns = before.st_mtime_ns + int(seconds_later * 1e9)
    os.utime(path, ns=(before.st_atime_ns, mtime_ns))
