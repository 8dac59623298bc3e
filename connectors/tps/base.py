"""The TPS-source interface: how PDAS reads and changes a Pinnacle ``$PATIENTS`` tree.

Paths are POSIX strings relative to the TPS root (``Institution_1/Mount_0/Patient_7/Patient``);
``""`` is the root itself. An implementation never follows a symbolic link: listings report a
link as ``kind="symlink"`` and reads of a link fail, so nothing outside the patient directory is
ever read, packed or removed. A path that would leave the root (``..``, absolute) raises
``TpsError``.
"""
from __future__ import annotations

from connectors.errors import ConnectorError

import posixpath
import stat as stat_mod
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, Literal

EntryKind = Literal["file", "dir", "symlink", "other"]


def entry_kind(mode: int | None) -> EntryKind:
    """The Entry kind of an ``st_mode`` (lstat: a link is a ``symlink``)."""
    mode = mode or 0
    if stat_mod.S_ISREG(mode):
        return "file"
    if stat_mod.S_ISDIR(mode):
        return "dir"
    if stat_mod.S_ISLNK(mode):
        return "symlink"
    return "other"


class TpsError(ConnectorError):
    """A TPS operation failed. ``retryable`` says whether trying again may help (network, busy)."""


@dataclass(frozen=True)
class Entry:
    name: str
    path: str  # relative to the TPS root
    kind: EntryKind
    size: int
    mtime: float  # seconds since the epoch


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: bytes
    stderr: bytes


def clean_relpath(rel: str) -> str:
    """Normalise a root-relative path; refuse absolute paths and any ``..`` that leaves the root."""
    if rel in ("", "."):
        return ""
    if rel.startswith("/") or "\x00" in rel:
        raise TpsError(f"path {rel!r} is not relative to the TPS root")
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith("../"):
        raise TpsError(f"path {rel!r} leaves the TPS root")
    return "" if norm == "." else norm


class TpsSource(ABC):
    """One open connection to a TPS tree. Use as a context manager; ``close()`` is idempotent."""

    url: str

    def __enter__(self) -> "TpsSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def list_dir(self, rel: str) -> list[Entry]:
        """Entries of a directory (lstat: links are ``symlink``), sorted by name."""

    @abstractmethod
    def stat(self, rel: str) -> Entry | None:
        """The entry at ``rel`` (lstat), or None when nothing is there."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The whole content of a regular file."""

    @abstractmethod
    def open_read(self, rel: str) -> BinaryIO:
        """A binary stream of a regular file (for large image files)."""

    @abstractmethod
    def write_bytes_atomic(self, rel: str, data: bytes) -> None:
        """Write via a temporary sibling and a rename, so readers never see half a file."""

    def write_stream_atomic(self, rel: str, chunks: Iterable[bytes], *, mtime: float | None = None) -> int:
        """Write a stream of chunks like ``write_bytes_atomic``; set the file's mtime when given; return bytes written.

        This default holds the whole file in memory and leaves the mtime alone; the local and SSH
        sources stream to the temporary sibling instead and set the mtime before the rename.
        """
        data = b"".join(chunks)
        self.write_bytes_atomic(rel, data)
        return len(data)

    @abstractmethod
    def make_dirs(self, rel: str) -> None:
        """Create a directory and its parents; fine if it exists."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Move within the TPS file system; refuse (TpsError) if ``dst`` exists."""

    @abstractmethod
    def remove_tree(self, rel: str) -> None:
        """Delete a directory tree. Only the quarantine purge calls this."""

    @abstractmethod
    def run(self, argv: list[str], *, stdin: bytes | None = None, timeout: float = 3600) -> CommandResult:
        """Run a command on the TPS host with the TPS root as working directory."""

    @abstractmethod
    def host_path(self, rel: str) -> str:
        """The absolute path of ``rel`` on the TPS host (for scripts run there)."""

    @abstractmethod
    def close(self) -> None:
        ...

    def free_bytes(self, rel: str) -> int | None:
        """Bytes free for writing on the file system holding ``rel`` (an existing folder), from POSIX
        ``df -P -k`` run on the TPS host; None when that cannot be known (no df, an odd answer)."""
        try:
            done = self.run(["df", "-P", "-k", self.host_path(rel)], timeout=60)
        except TpsError:
            return None
        lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
        if done.exit_status != 0 or len(lines) < 2:
            return None
        fields = lines[-1].split()
        try:
            return int(fields[-3]) * 1024  # Filesystem 1024-blocks Used Available Capacity Mounted-on
        except (IndexError, ValueError):
            return None

    def walk_files(self, rel: str) -> Iterator[Entry]:
        """Every non-directory entry below ``rel``, depth first, links reported but not entered."""
        stack = [clean_relpath(rel)]
        while stack:
            current = stack.pop()
            entries = self.list_dir(current)
            for entry in reversed(entries):
                if entry.kind == "dir":
                    stack.append(entry.path)
            for entry in entries:
                if entry.kind != "dir":
                    yield entry
