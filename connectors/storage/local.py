"""``file://`` targets: a folder on a mounted storage array (NFS, SMB) or local disk."""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator

from connectors.urls import redact_url
from connectors.storage.base import (
    CHUNK, Digest, ProgressFn, RemoteFile, StorageBackend, StorageError, check_name, is_temporary,
)


class FileStorage(StorageBackend):
    def __init__(self, root: Path, *, url: str = ""):
        self.root = Path(root)
        self.url = redact_url(url) if url else f"file://{self.root}"
        if not self.root.is_dir():
            raise StorageError(f"{self.url}: folder does not exist or is not reachable", retryable=True)

    def _path(self, name: str) -> Path:
        return self.root / (name if is_temporary(name) else check_name(name))

    def _fail(self, exc: OSError, what: str) -> StorageError:
        retryable = exc.errno in (errno.EIO, errno.ETIMEDOUT, errno.ESTALE, errno.EAGAIN)
        reason = "target is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
        return StorageError(f"{self.url}: {what}: {reason}", retryable=retryable)

    def list_files(self) -> list[RemoteFile]:
        found = []
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            found.append(RemoteFile(entry.name, entry.stat(follow_symlinks=False).st_size))
                    except FileNotFoundError:
                        continue  # another worker's temporary upload, renamed or removed since the folder was read
        except OSError as exc:
            raise self._fail(exc, "cannot list") from None
        return sorted(found, key=lambda f: f.name)

    def stat(self, name: str) -> RemoteFile | None:
        try:
            st = os.lstat(self._path(name))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(exc, f"cannot stat {name}") from None
        return RemoteFile(name, st.st_size)

    def _write_temporary(self, temp: str, chunks: Iterable[bytes], progress: ProgressFn | None) -> int:
        written = 0
        try:
            handle = open(self.root / temp, "xb")
        except OSError as exc:
            raise self._fail(exc, f"cannot write {temp}") from None
        try:
            for data in chunks:  # an error raised by the producer propagates as it is
                try:
                    handle.write(data)
                except OSError as exc:
                    raise self._fail(exc, f"cannot write {temp}") from None
                written += len(data)
                if progress:
                    progress(len(data))
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                raise self._fail(exc, f"cannot write {temp}") from None
        except BaseException:
            try:
                handle.close()  # flushing what is buffered may fail again (a full disk): the first error stands
            except OSError:
                pass
            raise
        try:
            handle.close()
        except OSError as exc:
            raise self._fail(exc, f"cannot write {temp}") from None
        return written

    def _rename_new(self, temp: str, name: str) -> None:
        # link() fails when the name exists, unlike rename(): never replaces a stored archive.
        try:
            os.link(self.root / temp, self._path(name))
        except FileExistsError:
            raise StorageError(f"{name} already exists on {self.url}", exists=True) from None
        except OSError as exc:
            raise self._fail(exc, f"cannot store {name}") from None
        try:
            os.unlink(self.root / temp)
            dir_fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise self._fail(exc, f"cannot store {name}") from None

    def read_chunks(self, name: str, chunk: int = CHUNK) -> Iterator[bytes]:
        try:
            with open(self._path(name), "rb") as handle:
                while data := handle.read(chunk):
                    yield data
        except OSError as exc:
            raise self._fail(exc, f"cannot read {name}") from None

    def remote_sha256(self, name: str) -> Digest | None:
        hasher = hashlib.sha256()
        size = 0
        for data in self.read_chunks(name):
            hasher.update(data)
            size += len(data)
        return Digest(hasher.hexdigest(), size, "local_hash")

    def remove(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fail(exc, f"cannot remove {name}") from None

    def close(self) -> None:
        pass
