"""``sftp://`` targets over paramiko, with the digest computed on the target by ``sha256sum``."""
from __future__ import annotations

import shlex
import socket
import stat as stat_mode
from typing import Iterable, Iterator

import paramiko

from connectors.ssh import SshAddress, SshConnectError, connect, encode_name, list_raw
from connectors.urls import redact_url
from connectors.storage.base import (
    CHUNK, Digest, ProgressFn, RemoteFile, StorageBackend, StorageError, check_name, is_temporary, join,
)

_TRANSIENT = (socket.timeout, TimeoutError, ConnectionError, EOFError, paramiko.SSHException)


class SftpStorage(StorageBackend):
    def __init__(self, url: str, *, password: str | None = None, key_file: str | None = None,
                 known_hosts: str | None = None, timeout: float = 30, remote_hash: bool = True):
        self.url = redact_url(url)
        try:
            self.address = SshAddress.from_url(url, schemes=("sftp",))
        except ValueError as exc:
            raise StorageError(str(exc)) from None
        self.root = self.address.path
        self.remote_hash = remote_hash
        self._timeout = timeout
        try:
            self.client = connect(self.address, password=password, key_file=key_file, known_hosts=known_hosts,
                                  timeout=timeout)
            self.sftp = self.client.open_sftp()
            self.sftp.get_channel().settimeout(timeout)
        except SshConnectError as exc:
            raise StorageError(str(exc), retryable=exc.retryable) from None
        except _TRANSIENT as exc:
            raise StorageError(f"{self.address}: cannot open SFTP: {exc}", retryable=True) from None

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}" if is_temporary(name) else join(self.root, name)

    def _fail(self, what: str, exc: Exception) -> StorageError:
        if isinstance(exc, PermissionError):
            return StorageError(f"{self.url}: {what}: permission denied")
        if isinstance(exc, OSError) and not isinstance(exc, (TimeoutError, ConnectionError)):
            # SFTP maps server-side failures (disk full included) to a generic OSError/IOError.
            return StorageError(f"{self.url}: {what}: {exc}")
        return StorageError(f"{self.url}: {what}: {exc}", retryable=True)

    def _connected(self) -> bool:
        transport = self.client.get_transport() if self.client else None
        return transport is not None and transport.is_active()

    def list_files(self) -> list[RemoteFile]:
        """Regular files at the root. A name that is not UTF-8 (planted, or from another system) is listed
        with surrogate escapes rather than failing the listing: it matches no archive, so it is reported
        where listings are compared, and restores and rebuild_index go on."""
        try:
            entries = list_raw(self.sftp, encode_name(self.root), connected=self._connected)
        except (OSError, paramiko.SFTPError, *_TRANSIENT) as exc:
            raise self._fail("cannot list", exc) from None
        return sorted((RemoteFile(name, a.st_size or 0) for name, a in entries if stat_mode.S_ISREG(a.st_mode or 0)),
                      key=lambda f: f.name)

    def stat(self, name: str) -> RemoteFile | None:
        try:
            attrs = self.sftp.lstat(self._path(name))
        except FileNotFoundError:
            return None
        except (OSError, *_TRANSIENT) as exc:
            raise self._fail(f"cannot stat {name}", exc) from None
        return RemoteFile(name, attrs.st_size or 0)

    def _write_temporary(self, temp: str, chunks: Iterable[bytes], progress: ProgressFn | None) -> int:
        written = 0
        try:
            handle = self.sftp.open(self._path(temp), "wbx")  # x: fail if it exists
            handle.set_pipelined(True)  # do not wait for each write's answer: the link stays full
        except (OSError, *_TRANSIENT) as exc:
            raise self._fail(f"cannot upload {temp}", exc) from None
        with handle:
            for data in chunks:  # an error raised by the producer propagates as it is
                try:
                    handle.write(data)
                except (OSError, *_TRANSIENT) as exc:
                    raise self._fail(f"cannot upload {temp}", exc) from None
                written += len(data)
                if progress:
                    progress(len(data))
            try:
                handle.flush()
            except (OSError, *_TRANSIENT) as exc:
                raise self._fail(f"cannot upload {temp}", exc) from None
        return written

    def _rename_new(self, temp: str, name: str) -> None:
        # Plain SFTP rename (not posix-rename@openssh.com) fails when the target exists.
        try:
            self.sftp.rename(self._path(temp), self._path(name))
        except (OSError, *_TRANSIENT) as exc:
            if self.stat(name) is not None:
                raise StorageError(f"{name} already exists on {self.url}", exists=True) from None
            raise self._fail(f"cannot rename to {name}", exc) from None

    def read_chunks(self, name: str, chunk: int = CHUNK) -> Iterator[bytes]:
        try:
            with self.sftp.open(self._path(check_name(name)), "rb") as handle:
                handle.prefetch()
                while data := handle.read(chunk):
                    yield data
        except (OSError, *_TRANSIENT) as exc:
            raise self._fail(f"cannot read {name}", exc) from None

    def remote_sha256(self, name: str) -> Digest | None:
        """``sha256sum`` on the storage host; None (read back instead) when exec is not allowed there."""
        if not self.remote_hash:
            return None
        path = self._path(check_name(name))
        command = f"stat -c %s -- {shlex.quote(path)} && sha256sum -b -- {shlex.quote(path)}"
        try:
            _, stdout, _ = self.client.exec_command(command, timeout=self._timeout * 100)
            output = stdout.read().decode("utf-8", "replace").split()
            status = stdout.channel.recv_exit_status()
        except _TRANSIENT:
            return None
        if status != 0 or len(output) < 2 or len(output[1]) != 64:
            return None
        return Digest(sha256=output[1].lower(), size=int(output[0]), method="remote_hash")

    def remove(self, name: str) -> None:
        try:
            self.sftp.remove(self._path(name))
        except FileNotFoundError:
            pass
        except (OSError, *_TRANSIENT) as exc:
            raise self._fail(f"cannot remove {name}", exc) from None

    def close(self) -> None:
        for closer in (getattr(self, "sftp", None), getattr(self, "client", None)):
            if closer is not None:
                try:
                    closer.close()
                except Exception:
                    pass
        self.sftp = self.client = None
