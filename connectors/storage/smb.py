"""``smb://[DOMAIN;]user@host[:port]/share/folder`` targets: a Windows or Samba share over SMB 2/3 (smbprotocol).

Every message is signed (a server that cannot sign is refused), and the session is encrypted whenever
the server offers SMB 3 encryption. A guest login is refused: it can neither sign nor encrypt. The
password comes from the target's configuration (``password_env`` / ``password_file``), never the URL.

Uploads go to a temporary name and are renamed into place; SMB's rename never replaces an existing
name (Samba answers ``ACCESS_DENIED``, Windows ``OBJECT_NAME_COLLISION``), so a stored archive is never
overwritten. SMB cannot hash a file on the server: the digest is the file read back.
"""
from __future__ import annotations

import errno
import socket
import uuid
from typing import Any, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from connectors.errors import unforeseen
from connectors.urls import redact_url
from connectors.storage.base import (
    CHUNK, ProgressFn, RemoteFile, StorageBackend, StorageError, check_name, is_temporary,
)

DEFAULT_PORT = 445
WRITE_CHUNK = 4 << 20  # one SMB WRITE per 4 MiB (Samba and Windows allow 8 MiB): fewer round trips


def smb_url_problem(url: str) -> str | None:
    """Why ``url`` is not ``smb://[DOMAIN;]user@host[:port]/share[/folder]``, or None."""
    parts = urlsplit(url)
    shown = redact_url(url)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{shown}: bad port"
    if not parts.hostname:
        return f"{shown}: names no host; write smb://user@host[:port]/share/folder"
    if not parts.username:
        return f"{shown}: names no user; write smb://user@host[:port]/share/folder (DOMAIN;user@ for a domain account)"
    if parts.query or parts.fragment:
        return f"{shown}: no ?query or #fragment in an smb URL"
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments:
        return f"{shown}: names no share; write smb://user@host[:port]/share/folder"
    if any(s in (".", "..") or "\\" in s for s in segments):
        return f"{shown}: the share path may not hold '.', '..' or a backslash"
    return None


def _user(raw: str) -> str:
    """``DOMAIN;user`` (the smb URL form of a domain account) becomes NTLM's ``DOMAIN\\user``."""
    domain, _, user = unquote(raw).rpartition(";")
    return f"{domain}\\{user}" if domain else user


class SmbStorage(StorageBackend):
    def __init__(self, url: str, *, password: str | None, timeout: float = 30):
        self.url = redact_url(url)
        if problem := smb_url_problem(url):
            raise StorageError(problem)
        parts = urlsplit(url)
        assert parts.hostname and parts.username  # smb_url_problem checked both
        self.host, self.port = parts.hostname, parts.port or DEFAULT_PORT
        segments = [unquote(s) for s in parts.path.split("/") if s]
        self.root = "\\\\" + "\\".join([self.host, *segments])
        self._cache: dict = {}
        self._session: Any = None
        self._connection: Any = None
        self._connect(_user(parts.username), password or "", timeout)

    def _connect(self, user: str, password: str, timeout: float) -> None:
        """Negotiate with signing required, log in, encrypt when offered, and check the share and folder.
        The frames that hold the password are dropped from every error raised here."""
        from smbprotocol.connection import Connection
        from smbprotocol.exceptions import SMBAuthenticationError, SMBException
        from smbprotocol.session import Session
        from spnego.exceptions import SpnegoError

        try:
            connection = self._connection = Connection(uuid.uuid4(), self.host, self.port, require_signing=True)
            connection.connect(timeout=timeout)
        except (ValueError, OSError, SMBException) as exc:  # smbprotocol reports a refused TCP link as ValueError
            self._close_quietly()
            raise StorageError(f"{self.url}: cannot connect: {exc}", retryable=True) from None
        try:
            # Encrypt whenever the server can (SMB 3); signing is required in any case.
            session = self._session = Session(connection, username=user, password=password,
                                              require_encryption=bool(connection.supports_encryption))
            session.connect()
        except (SMBAuthenticationError, SpnegoError) as exc:
            self._close_quietly()
            raise StorageError(f"{self.url}: login refused: {unforeseen(exc, secret=password)}") from None
        except SMBException as exc:
            self._close_quietly()
            reason = unforeseen(exc, secret=password)
            refused = "LOGON_FAILURE" in reason or "ACCESS_DENIED" in reason or "guest" in reason
            raise StorageError(f"{self.url}: {'login refused' if refused else 'cannot log in'}: {reason}",
                               retryable=not refused) from None
        except (OSError, ValueError) as exc:
            self._close_quietly()
            raise StorageError(f"{self.url}: cannot log in: {unforeseen(exc, secret=password)}",
                               retryable=True) from None
        self._cache[f"{self.host.lower()}:{self.port}"] = self._connection
        try:
            import smbclient

            if not smbclient.path.isdir(self.root, **self._kwargs):
                raise StorageError(f"{self.url}: the folder does not exist on the share")
        except StorageError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise self._fail("cannot open the share", exc) from None

    @property
    def _kwargs(self) -> dict:
        if self._connection is None:
            raise StorageError(f"{self.url}: the connection is closed")
        return {"connection_cache": self._cache, "port": self.port}

    @property
    def encrypted(self) -> bool:
        """Whether the session encrypts (SMB 3 with a server that offers it); signed in any case."""
        return bool(self._session is not None and self._session.encrypt_data)

    def _path(self, name: str) -> str:
        return f"{self.root}\\{name if is_temporary(name) else check_name(name)}"

    def _fail(self, what: str, exc: BaseException) -> StorageError:
        from smbprotocol.exceptions import SMBConnectionClosed, SMBOSError

        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, SMBOSError):
            text = str(exc).replace(exc.filename or "", "").rstrip(": '")
            if "DISK_FULL" in text or "QUOTA" in text:
                return StorageError(f"{self.url}: {what}: target is full")
            if "ACCESS_DENIED" in text or exc.errno in (errno.EACCES, errno.EPERM):
                return StorageError(f"{self.url}: {what}: permission denied ({text})")
            return StorageError(f"{self.url}: {what}: {text}")
        if isinstance(exc, (SMBConnectionClosed, ConnectionError, socket.timeout, TimeoutError, EOFError)):
            return StorageError(f"{self.url}: {what}: {unforeseen(exc)}", retryable=True)
        return StorageError(f"{self.url}: {what}: {unforeseen(exc)}", retryable=True)

    def list_files(self) -> list[RemoteFile]:
        import smbclient

        try:
            found = [RemoteFile(entry.name, int(entry.smb_info.end_of_file))
                     for entry in smbclient.scandir(self.root, **self._kwargs) if entry.is_file()]
        except Exception as exc:
            raise self._fail("cannot list", exc) from None
        return sorted(found, key=lambda f: f.name)

    def stat(self, name: str) -> RemoteFile | None:
        import smbclient

        try:
            found = smbclient.stat(self._path(name), follow_symlinks=False, **self._kwargs)
        except OSError as exc:  # smbclient's SMBOSError carries errno, but is no FileNotFoundError
            if exc.errno == errno.ENOENT:
                return None
            raise self._fail(f"cannot stat {name}", exc) from None
        except Exception as exc:
            raise self._fail(f"cannot stat {name}", exc) from None
        return RemoteFile(name, int(found.st_size))

    def _write_temporary(self, temp: str, chunks: Iterable[bytes], progress: ProgressFn | None) -> int:
        import smbclient

        written = 0
        try:
            handle = smbclient.open_file(self._path(temp), mode="xb", buffering=0, **self._kwargs)  # x: never an existing one
        except Exception as exc:
            raise self._fail(f"cannot upload {temp}", exc) from None
        writer = _PipelinedWriter(handle.fd, min(WRITE_CHUNK, self._connection.max_write_size or WRITE_CHUNK))
        try:
            for data in chunks:  # an error raised by the producer propagates as it is
                try:
                    writer.write(data)
                except Exception as exc:
                    raise self._fail(f"cannot upload {temp}", exc) from None
                written += len(data)
                if progress:
                    progress(len(data))
            try:
                writer.finish()
            except Exception as exc:
                raise self._fail(f"cannot upload {temp}", exc) from None
        finally:
            try:
                writer.abandon()
                handle.close()
            except Exception:
                pass  # a failed write already raised; a failed close shows as a size mismatch in upload()
        return written

    def _rename_new(self, temp: str, name: str) -> None:
        import smbclient

        try:
            smbclient.rename(self._path(temp), self._path(name), **self._kwargs)  # fails when name exists
        except Exception as exc:
            if self.stat(name) is not None:
                raise StorageError(f"{name} already exists on {self.url}", exists=True) from None
            raise self._fail(f"cannot rename to {name}", exc) from None

    def read_chunks(self, name: str, chunk: int = CHUNK) -> Iterator[bytes]:
        import smbclient

        try:
            with smbclient.open_file(self._path(check_name(name)), mode="rb", buffering=0, **self._kwargs) as handle:
                size = max(chunk, WRITE_CHUNK)
                while data := handle.read(size):
                    yield data
        except Exception as exc:
            raise self._fail(f"cannot read {name}", exc) from None

    def remove(self, name: str) -> None:
        import smbclient

        try:
            smbclient.remove(self._path(name), **self._kwargs)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise self._fail(f"cannot remove {name}", exc) from None
        except Exception as exc:
            raise self._fail(f"cannot remove {name}", exc) from None

    def _close_quietly(self) -> None:
        for closer in (self._session, self._connection):
            if closer is not None:
                try:
                    closer.disconnect()
                except Exception:
                    pass
        self._session = self._connection = None
        self._cache.clear()

    def close(self) -> None:
        self._close_quietly()


class _PipelinedWriter:
    """Writes to an open SMB file with up to ``DEPTH`` WRITE requests in flight (the server answers each
    one after storing it; waiting for every answer before the next leaves the link idle). Every answer is
    checked: a short or failed write raises."""

    DEPTH = 3

    def __init__(self, smb_open: Any, size: int):
        self._open, self._size = smb_open, size
        self._buffer = bytearray()
        self._offset = 0
        self._in_flight: list[tuple[Any, Any, int]] = []

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self._size:
            self._send(bytes(self._buffer[:self._size]))
            del self._buffer[:self._size]

    def _send(self, piece: bytes) -> None:
        message, receive = self._open.write(piece, self._offset, send=False)
        tree, connection = self._open.tree_connect, self._open.connection
        # A WRITE costs a credit per 64 KiB; the answers bring them back. Wait for answers while the
        # window is short, and ask for enough credits to keep DEPTH writes going.
        charge = max(1, -(-len(piece) // 65536))
        while self._in_flight and connection.sequence_window["high"] - connection.sequence_window["low"] < charge:
            self._collect()
        request = connection.send(message, tree.session.session_id, tree.tree_connect_id,
                                  credit_request=charge * (self.DEPTH + 1))
        self._in_flight.append((request, receive, len(piece)))
        self._offset += len(piece)
        while len(self._in_flight) >= self.DEPTH:
            self._collect()

    def _collect(self) -> None:
        request, receive, length = self._in_flight.pop(0)
        stored = receive(request)
        if stored != length:
            raise OSError(errno.EIO, f"the server stored {stored} of {length} bytes written")

    def finish(self) -> None:
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        while self._in_flight:
            self._collect()

    def abandon(self) -> None:
        """After a failure: wait for what is still in flight (answers ignored), so the file can be closed."""
        while self._in_flight:
            request, receive, _ = self._in_flight.pop(0)
            try:
                receive(request)
            except Exception:
                pass
