"""Storage targets behind one interface. ``open_target`` connects to a configured StorageTarget."""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from archiver.storage.base import Digest, RemoteFile, StorageBackend, StorageError

__all__ = ["Digest", "RemoteFile", "StorageBackend", "StorageError", "open_storage", "open_target",
           "target_password"]


def open_storage(url: str, *, password: str | None = None, key_file: str | None = None,
                 known_hosts: str | None = None, ca_file: str | None = None, allow_plain_ftp: bool = False,
                 timeout: float = 30) -> StorageBackend:
    parts = urlsplit(url)
    if parts.scheme == "file":
        from archiver.storage.local import FileStorage

        return FileStorage(Path(unquote(parts.path)), url=url)
    if parts.scheme in ("ftp", "ftps"):
        from archiver.storage.ftp import FtpStorage

        if parts.scheme == "ftp" and not allow_plain_ftp:
            raise StorageError(f"{url}: plain FTP sends passwords and data in clear; use ftps:// "
                               "or set allow_plain_ftp for a private storage network")
        if not parts.hostname:
            raise StorageError(f"{url}: no host")
        return FtpStorage(host=parts.hostname, port=parts.port or 21, user=unquote(parts.username or "anonymous"),
                          password=password or "", root=unquote(parts.path) or "/", tls=parts.scheme == "ftps",
                          ca_file=ca_file, timeout=timeout, url=url)
    if parts.scheme == "sftp":
        from archiver.storage.sftp import SftpStorage

        return SftpStorage(url, password=password, key_file=key_file, known_hosts=known_hosts, timeout=timeout)
    raise StorageError(f"{url}: unsupported target (use file://, ftp://, ftps:// or sftp://)")


def target_password(target) -> str | None:
    """The target's secret from the environment variable or file its configuration names."""
    if target.password_env:
        value = os.environ.get(target.password_env)
        if value is None:
            raise StorageError(f"storage {target.name}: environment variable {target.password_env} is not set")
        return value
    if target.password_file:
        try:
            return Path(target.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StorageError(f"storage {target.name}: cannot read password_file {target.password_file}: "
                               f"{exc.strerror}") from None
    return None


def open_target(target, *, timeout: float = 30) -> StorageBackend:
    return open_storage(target.url, password=target_password(target), key_file=target.key_file or None,
                        known_hosts=target.known_hosts or None, ca_file=target.ca_file or None,
                        allow_plain_ftp=target.allow_plain_ftp, timeout=timeout)
