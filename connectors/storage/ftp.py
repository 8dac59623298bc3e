"""``ftps://`` (explicit TLS, protected data channel) and, only when allowed, plain ``ftp://`` targets."""
from __future__ import annotations

import ftplib
import socket
import ssl
from typing import Iterable, Iterator

from connectors.errors import unforeseen
from connectors.urls import redact_url
from connectors.storage.base import (
    CHUNK, ProgressFn, RemoteFile, StorageBackend, StorageError, is_temporary, join, check_name,
)

_TRANSIENT = (socket.timeout, TimeoutError, ConnectionError, EOFError, ftplib.error_temp, OSError)


class _ProducerFailed(Exception):
    """The chunk producer (not the FTP link) failed; its error is re-raised as it is."""


class _ChunkReader:
    """File-like adapter so ``storbinary`` can send an iterator of chunks."""

    def __init__(self, chunks: Iterable[bytes], progress: ProgressFn | None):
        self._chunks = iter(chunks)
        self._buffer = b""
        self._progress = progress
        self.sent = 0
        self.error: BaseException | None = None

    def read(self, size: int = CHUNK) -> bytes:
        while len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
            except Exception as exc:
                self.error = exc
                raise _ProducerFailed from exc
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.sent += len(data)
        if data and self._progress:
            self._progress(len(data))
        return data


class FtpStorage(StorageBackend):
    def __init__(self, *, host: str, port: int, user: str, password: str, root: str, tls: bool,
                 ca_file: str | None = None, timeout: float = 30, url: str = ""):
        self.url = redact_url(url) if url else f"{'ftps' if tls else 'ftp'}://{user}@{host}:{port}{root}"
        self.root = root
        self._login = (host, port, user, password, tls, ca_file, timeout)
        self.ftp: ftplib.FTP | None = None
        self._connect()

    def _connect(self) -> None:
        """Connect and log in. Every failure becomes a ``StorageError`` raised here, in a frame that holds no
        password (``_log_in``'s frames, which do, are dropped), also on a reconnect long after opening."""
        try:
            self._log_in()
        except ftplib.error_perm as exc:
            self._close_quietly()
            raise StorageError(f"{self.url}: login refused: {exc}") from None
        except ssl.SSLError as exc:
            self._close_quietly()
            raise StorageError(f"{self.url}: TLS failed: {exc.reason or exc}") from None
        except _TRANSIENT as exc:
            self._close_quietly()
            raise StorageError(f"{self.url}: cannot connect: {exc}", retryable=True) from None
        except Exception as exc:  # a malformed reply (ftplib.error_reply, error_proto) or anything unforeseen
            self._close_quietly()
            raise StorageError(f"{self.url}: cannot log in: {unforeseen(exc, secret=self._login[3])}") from None

    def _log_in(self) -> None:
        host, port, user, password, tls, ca_file, timeout = self._login
        if tls:
            context = ssl.create_default_context(cafile=ca_file or None)
            self.ftp = ftplib.FTP_TLS(context=context, timeout=timeout, encoding="utf-8")
        else:
            self.ftp = ftplib.FTP(timeout=timeout, encoding="utf-8")
        ftp = self.ftp
        ftp.connect(host, port)
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.auth()
        ftp.login(user, password)
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()  # encrypt the data channel too, not only the commands
        try:
            ftp.sendcmd("OPTS UTF8 ON")
        except ftplib.Error:
            pass  # servers that always speak UTF-8 reject the option; names still go as UTF-8
        ftp.voidcmd("TYPE I")

    @property
    def _open(self) -> ftplib.FTP:
        """The control connection; after ``close()`` there is none, which is said instead of failing on None."""
        if self.ftp is None:
            raise StorageError(f"{self.url}: the connection is closed")
        return self.ftp

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}" if is_temporary(name) else join(self.root, name)

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except ftplib.error_perm as exc:
            raise StorageError(f"{self.url}: {what}: {exc}") from None
        except ssl.SSLError as exc:
            raise StorageError(f"{self.url}: {what}: TLS error {exc.reason or exc}", retryable=True) from None
        except _TRANSIENT as exc:
            raise StorageError(f"{self.url}: {what}: {exc}", retryable=True) from None

    def list_files(self) -> list[RemoteFile]:
        def listing():
            try:
                found = [RemoteFile(name, int(facts.get("size", 0)))
                         for name, facts in self._open.mlsd(self.root, facts=["type", "size"])
                         if facts.get("type") == "file"]
                self._binary()
                return found
            except ftplib.error_perm:  # no MLSD: fall back to NLST + SIZE
                names = [n.rsplit("/", 1)[-1] for n in self._open.nlst(self.root)]
                self._binary()
                return [f for f in (self.stat(n) for n in names if n not in (".", "..")) if f]
        return sorted(self._call("cannot list", listing), key=lambda f: f.name)

    def _binary(self) -> None:
        """Back to TYPE I after a listing: ftplib lists in ASCII mode, and many servers (pyftpdlib, ProFTPD)
        refuse SIZE there with a 550, which ``stat`` would take for "no such file"."""
        self._open.voidcmd("TYPE I")

    def stat(self, name: str) -> RemoteFile | None:
        try:
            size = self._open.size(self._path(name))
        except ftplib.error_perm:
            return None  # 550: no such file
        except _TRANSIENT as exc:
            raise StorageError(f"{self.url}: cannot stat {name}: {exc}", retryable=True) from None
        return RemoteFile(name, int(size)) if size is not None else None

    def _write_temporary(self, temp: str, chunks: Iterable[bytes], progress: ProgressFn | None) -> int:
        reader = _ChunkReader(chunks, progress)
        try:
            self._call(f"cannot upload {temp}", self._open.storbinary, f"STOR {self._path(temp)}", reader, CHUNK)
        except _ProducerFailed:
            self._abandon_transfer()
            assert reader.error is not None  # _ProducerFailed is raised only after setting it
            raise reader.error from None
        return reader.sent

    def _abandon_transfer(self) -> None:
        """After a producer failure mid-STOR the control connection is in an unknown state: reconnect."""
        self._close_quietly()
        try:
            self._connect()
        except StorageError:
            pass  # the caller's cleanup then fails quietly; the temporary name is swept on the next run

    def _rename_new(self, temp: str, name: str) -> None:
        # FTP's RNTO replaces silently on most servers, so look first.
        if self.stat(name) is not None:
            raise StorageError(f"{name} already exists on {self.url}", exists=True)
        self._call(f"cannot rename to {name}", self._open.rename, self._path(temp), self._path(name))

    def read_chunks(self, name: str, chunk: int = CHUNK) -> Iterator[bytes]:
        check_name(name)
        try:
            with self._open.transfercmd(f"RETR {self._path(name)}") as conn:
                while data := conn.recv(chunk):
                    yield data
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
            self._open.voidresp()
        except ftplib.error_perm as exc:
            raise StorageError(f"{self.url}: cannot read {name}: {exc}") from None
        except (ssl.SSLError, *_TRANSIENT) as exc:
            raise StorageError(f"{self.url}: cannot read {name}: {exc}", retryable=True) from None

    def remove(self, name: str) -> None:
        try:
            self._open.delete(self._path(name))
        except ftplib.error_perm:
            pass  # already gone
        except _TRANSIENT as exc:
            raise StorageError(f"{self.url}: cannot remove {name}: {exc}", retryable=True) from None

    def _close_quietly(self) -> None:
        try:
            if self.ftp is not None:
                self.ftp.close()
        except Exception:
            pass

    def close(self) -> None:
        if getattr(self, "ftp", None) is not None:
            try:
                self._open.quit()
            except Exception:
                self._close_quietly()
            self.ftp = None
