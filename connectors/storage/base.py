"""The storage-target interface: where archives and their sidecars are kept.

A target is a flat folder of files (``<archive>``, ``<archive>.sha256``, ``<archive>.manifest.json``).
Uploads go to a temporary name and are renamed into place; an existing file is never overwritten
(``StorageError(exists=True)``), so two runs can never silently replace a verified archive.
Listings raise on failure: a listing that could not be read is never reported as empty.

A target that can enforce retention itself (S3 with Object Lock) takes an ``ObjectLock`` with the upload:
the caller hands over plain values (a date, a flag), so this package stays free of the models.
"""
from __future__ import annotations

from connectors.errors import ConnectorError

import datetime as dt
import hashlib
import io
import posixpath
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

CHUNK = 1 << 20
ProgressFn = Callable[[int], None]


class StorageError(ConnectorError):
    """A target operation failed. ``retryable``: a later try may succeed (network, timeout); ``exists``:
    the name is already taken on the target."""

    def __init__(self, message: str, *, retryable: bool = False, exists: bool = False):
        super().__init__(message, retryable=retryable)
        self.exists = exists


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int
    method: str  # FixityCheck.Method value: remote_hash, read_back or local_hash


@dataclass(frozen=True)
class ObjectLock:
    """Retention a target enforces on a stored file, where it can (S3 Object Lock): kept at least until
    ``retain_until`` (None: no date), and not deletable at all while ``legal_hold``. Targets that cannot
    enforce it ignore it; PDAS's own rules (``Archive.may_be_deleted``) apply everywhere."""

    retain_until: dt.datetime | None = None
    legal_hold: bool = False


def check_name(name: str) -> str:
    """Archive and sidecar names are plain file names: no folders, no dot-files."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise StorageError(f"{name!r} is not a plain file name")
    return name


def temporary_name(name: str) -> str:
    return f".{name}.{uuid.uuid4().hex[:12]}.part"


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".part")


class StorageBackend(ABC):
    """One open connection to a target. Use as a context manager; ``close()`` is idempotent."""

    url: str

    def __enter__(self) -> "StorageBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def list_files(self) -> list[RemoteFile]:
        """Regular files in the target folder (temporary upload names included)."""

    @abstractmethod
    def stat(self, name: str) -> RemoteFile | None:
        """The file, or None when it does not exist."""

    @abstractmethod
    def _write_temporary(self, temp: str, chunks: Iterable[bytes], progress: ProgressFn | None) -> int:
        """Write ``chunks`` to ``temp``; return the bytes written."""

    @abstractmethod
    def _rename_new(self, temp: str, name: str) -> None:
        """Rename ``temp`` to ``name``; raise ``StorageError(exists=True)`` when ``name`` exists."""

    @abstractmethod
    def read_chunks(self, name: str, chunk: int = CHUNK) -> Iterator[bytes]:
        """The file's bytes, in chunks."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Delete a file (PDAS only removes its own temporary uploads)."""

    @abstractmethod
    def close(self) -> None:
        ...

    def remote_sha256(self, name: str) -> Digest | None:
        """A digest computed where the file lives, or None when the target cannot do that."""
        return None

    def upload(self, name: str, chunks: Iterable[bytes], *, progress: ProgressFn | None = None,
               lock: ObjectLock | None = None) -> int:
        """Store a new file under ``name``; the temporary upload is removed on any failure. ``lock``: retention
        for a target that enforces it (``apply_lock``); the others ignore it."""
        check_name(name)
        if self.stat(name) is not None:
            raise StorageError(f"{name} already exists on {self.url}", exists=True)
        temp = temporary_name(name)
        try:
            written = self._write_temporary(temp, chunks, progress)
            stored = self.stat(temp)
            if stored is None or stored.size != written:
                raise StorageError(
                    f"{name}: {written} bytes sent but {stored.size if stored else 'no file'} stored on {self.url}",
                    retryable=True,
                )
            self._rename_new(temp, name)
        except BaseException:
            try:
                self.remove(temp)
            except Exception:  # best effort: the original error is the one to report
                pass
            raise
        if lock is not None:
            self.apply_lock(name, lock)
        return written

    def apply_lock(self, name: str, lock: ObjectLock) -> bool:
        """Make the target keep ``name`` as ``lock`` says, never shorter than it already does; False when
        this target cannot enforce retention (the default: only PDAS's own rules then keep it)."""
        return False

    def write_bytes(self, name: str, data: bytes, *, lock: ObjectLock | None = None) -> None:
        self.upload(name, [data], lock=lock)

    def read_bytes(self, name: str) -> bytes:
        return b"".join(self.read_chunks(name))

    def open_stream(self, name: str) -> io.BufferedReader:
        """A readable file-like stream of a stored file (over ``read_chunks``)."""
        return io.BufferedReader(ChunkStream(self.read_chunks(name)), buffer_size=CHUNK)

    def digest(self, name: str) -> Digest:
        """SHA-256 of a stored file: hashed on the target where possible, else read back and hashed."""
        remote = self.remote_sha256(name)
        if remote is not None:
            return remote
        hasher = hashlib.sha256()
        size = 0
        for data in self.read_chunks(name):
            hasher.update(data)
            size += len(data)
        return Digest(sha256=hasher.hexdigest(), size=size, method="read_back")


class ChunkStream(io.RawIOBase):
    """A raw readable stream over an iterator of chunks (wrap it in ``io.BufferedReader``)."""

    def __init__(self, chunks: Iterable[bytes]):
        super().__init__()
        self._chunks, self._buffer = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._buffer))
        buffer[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        return n


def join(root: str, name: str) -> str:
    return posixpath.join(root, check_name(name)) if root else check_name(name)
