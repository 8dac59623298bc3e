"""Storage targets behind one interface. ``open_target`` connects to a configured StorageTarget."""
from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from connectors.ssh import SshAddress
from connectors.errors import ConnectorError, unforeseen
from connectors.urls import file_url_problem, inline_password_problem, redact_url
from connectors.storage.base import Digest, ObjectLock, RemoteFile, StorageBackend, StorageError
from connectors.storage.s3 import s3_url_problem
from connectors.storage.smb import smb_url_problem

__all__ = ["SCHEMES", "Digest", "ObjectLock", "RemoteFile", "StorageBackend", "StorageError", "open_storage",
           "same_place", "target_location", "url_problem", "url_shape_problem"]

# The scheme registry: what the opener accepts is what the site configuration accepts.
SCHEMES = {"file": "a local or mounted folder", "ftp": "FTP (only with allow_plain_ftp)",
           "ftps": "FTP over explicit TLS", "sftp": "SFTP over SSH", "smb": "an SMB 2/3 share (Windows, Samba)",
           "s3": "S3-compatible object storage"}


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a storage target (``file:``, ``ftp:``, ``ftps:``, ``sftp:``, ``smb:``, ``s3:``), or None:
    the one check of a target URL: the site configuration asks all of it, ``open_storage`` its shape."""
    where = ("access_key_env and secret_key_env" if urlsplit(url).scheme == "s3"
             else "password_env or password_file")
    return inline_password_problem(url, where) or url_shape_problem(url)


def url_shape_problem(url: str) -> str | None:
    """The protocol's own rules for the URL (no inline-password rule), or None: what the opener checks."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme == "file":
        return file_url_problem(url)
    if parts.scheme == "smb":
        return smb_url_problem(url)
    if parts.scheme == "s3":
        return s3_url_problem(url)
    if parts.scheme in ("ftp", "ftps", "sftp"):
        if parts.scheme == "sftp":
            try:
                SshAddress.from_url(url, schemes=("sftp",))
            except ValueError as exc:
                return str(exc)
            return None
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            return f"{shown}: bad port"
        if not parts.hostname:
            return f"{shown}: names no host; write {parts.scheme}://user@host[:port]/folder"
        return None
    return (f"{shown}: unsupported target {parts.scheme or '(none)'!r}: use file:///absolute/path, ftps://, ftp://, "
            "sftp://user@host[:port]/folder, smb://user@host[:port]/share/folder or "
            "s3://bucket/prefix?endpoint=https://host")


_DEFAULT_PORTS = {"ftp": 21, "ftps": 21, "sftp": 22, "smb": 445}


def target_location(url: str) -> tuple[str, str, str]:
    """(kind of server, server, folder) a target URL stores into, normalised so two spellings of one folder
    compare equal: host in lower case with its default port, ``.``/``..``/repeated and trailing slashes
    resolved, SMB share and path case-folded (Windows compares names that way), FTP and FTPS one server,
    an S3 bucket and prefix at its endpoint. A URL whose shape is wrong gives its text as the folder."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    path = posixpath.normpath("/" + unquote(parts.path).strip("/"))
    if scheme == "file":
        return "file", "", path
    if scheme == "s3":
        endpoint = urlsplit(dict(parse_qsl(parts.query)).get("endpoint", ""))
        return "s3", f"{endpoint.hostname or ''}:{endpoint.port or ''}", f"/{(parts.hostname or '').lower()}{path}"
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return scheme, "", url
    server = f"{(parts.hostname or '').lower()}:{port}"
    if scheme == "smb":
        return "smb", server, path.casefold()
    return ("ftp" if scheme == "ftps" else scheme), server, path


def same_place(one: str, other: str) -> bool:
    """Whether two target URLs store into one folder, or one inside the other (``/srv/a`` and ``/srv/a/b``)."""
    a, b = target_location(one), target_location(other)
    if a[:2] != b[:2]:
        return False
    inner, outer = sorted((a[2], b[2]), key=len, reverse=True)
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def open_storage(url: str, *, password: str | None = None, key_file: str | None = None,
                 known_hosts: str | None = None, ca_file: str | None = None, allow_plain_ftp: bool = False,
                 access_key: str | None = None, secret_key: str | None = None, allow_plain_http: bool = False,
                 timeout: float = 30) -> StorageBackend:
    """Connect to the target ``url`` names. Every failure is a ``StorageError`` whose message holds the URL
    redacted; an unforeseen exception of a library becomes one too, with the library's frames (where the
    password is a variable) dropped. The frames from here up still hold ``password`` (``secret_key``): the
    caller that looked it up hides them from error reports (``sites.connections``, Django's
    ``sensitive_variables``)."""
    try:
        return _open(url, password=password, key_file=key_file, known_hosts=known_hosts, ca_file=ca_file,
                     allow_plain_ftp=allow_plain_ftp, access_key=access_key, secret_key=secret_key,
                     allow_plain_http=allow_plain_http, timeout=timeout)
    except ConnectorError:
        raise
    except Exception as exc:
        text = unforeseen(exc, secret=password)
        if secret_key:
            text = text.replace(secret_key, "***")
        raise StorageError(f"{redact_url(url)}: cannot connect: {text}") from None


def _open(url: str, *, password: str | None, key_file: str | None, known_hosts: str | None, ca_file: str | None,
          allow_plain_ftp: bool, access_key: str | None, secret_key: str | None, allow_plain_http: bool,
          timeout: float) -> StorageBackend:
    if problem := url_shape_problem(url):
        raise StorageError(problem)
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme == "file":
        from connectors.storage.local import FileStorage

        return FileStorage(Path(unquote(parts.path)), url=url)
    if parts.scheme in ("ftp", "ftps"):
        from connectors.storage.ftp import FtpStorage

        if parts.scheme == "ftp" and not allow_plain_ftp:
            raise StorageError(f"{shown}: plain FTP sends passwords and data in clear; use ftps:// "
                               "or set allow_plain_ftp for a private storage network")
        if not parts.hostname:
            raise StorageError(f"{shown}: no host")
        return FtpStorage(host=parts.hostname, port=parts.port or 21, user=unquote(parts.username or "anonymous"),
                          password=password or "", root=unquote(parts.path) or "/", tls=parts.scheme == "ftps",
                          ca_file=ca_file, timeout=timeout, url=url)
    if parts.scheme == "sftp":
        from connectors.storage.sftp import SftpStorage

        return SftpStorage(url, password=password, key_file=key_file, known_hosts=known_hosts, timeout=timeout)
    if parts.scheme == "smb":
        from connectors.storage.smb import SmbStorage

        return SmbStorage(url, password=password, timeout=timeout)
    if parts.scheme == "s3":
        from connectors.storage.s3 import S3Storage

        return S3Storage(url, access_key=access_key, secret_key=secret_key, allow_plain_http=allow_plain_http,
                         ca_file=ca_file, timeout=timeout)
    raise StorageError(f"{shown}: unsupported target (use file://, ftp://, ftps://, sftp://, smb:// or s3://)")
