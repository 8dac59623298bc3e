"""Opening SSH connections with a pinned host key, shared by the SSH TPS source and SFTP targets."""
from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from connectors.urls import redact_url


class SshConnectError(Exception):
    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class SshAddress:
    user: str
    host: str
    port: int
    path: str

    @classmethod
    def from_url(cls, url: str, *, schemes: tuple[str, ...]) -> "SshAddress":
        parts = urlsplit(url)
        shown = redact_url(url)
        if parts.scheme not in schemes or not parts.hostname or not parts.username:
            raise ValueError(f"{shown}: expected {schemes[0]}://user@host[:port]/absolute/path")
        try:
            port = parts.port or 22
        except ValueError:
            raise ValueError(f"{shown}: bad port") from None
        path = unquote(parts.path) or "/"
        if not path.startswith("/"):
            raise ValueError(f"{shown}: the path must be absolute")
        return cls(user=unquote(parts.username), host=parts.hostname, port=port, path=path.rstrip("/") or "/")

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def connect(address: SshAddress, *, password: str | None = None, key_file: str | None = None,
            known_hosts: str | None = None, timeout: float = 15) -> paramiko.SSHClient:
    """An authenticated client. The host key must be in ``known_hosts``: it is never added on first use."""
    if not known_hosts:
        raise SshConnectError(f"{address}: no known_hosts file is configured (host keys are pinned)", retryable=False)
    if not Path(known_hosts).is_file():
        raise SshConnectError(f"{address}: known_hosts file {known_hosts} does not exist", retryable=False)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(known_hosts)
    except (OSError, paramiko.SSHException) as exc:
        raise SshConnectError(f"{address}: cannot read known_hosts {known_hosts}: {exc}", retryable=False) from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            address.host, port=address.port, username=address.user, password=password or None,
            key_filename=key_file or None, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
            allow_agent=False, look_for_keys=False,
        )
    except paramiko.BadHostKeyException:
        client.close()
        raise SshConnectError(f"{address}: host key does not match {known_hosts} (refusing to connect)",
                              retryable=False) from None
    except paramiko.AuthenticationException:
        client.close()
        raise SshConnectError(f"{address}: authentication failed", retryable=False) from None
    except paramiko.SSHException as exc:
        client.close()
        unknown = "not found in known_hosts" in str(exc)
        raise SshConnectError(f"{address}: {exc}", retryable=not unknown) from None
    except (OSError, socket.timeout, EOFError) as exc:
        client.close()
        raise SshConnectError(f"{address}: cannot connect: {exc}", retryable=True) from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(30)
    return client


def decode_name(raw: bytes) -> str:
    """A file name from an SSH host, whose names are bytes: UTF-8, with any other byte kept as a surrogate
    (``surrogateescape``) so the name still round-trips to the host (``encode_name``)."""
    return raw.decode("utf-8", "surrogateescape")


def encode_name(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def list_raw(sftp: paramiko.SFTPClient, path: bytes, *, connected) -> list[tuple[str, paramiko.SFTPAttributes]]:
    """(name, attributes) of each entry of the folder ``path`` (``.`` and ``..`` left out).

    paramiko's ``listdir_attr`` decodes names as strict UTF-8 (one GB18030 or Latin-1 name planted in the
    folder makes every listing fail) and takes a dropped link for the end of the folder; this reads raw
    names (``decode_name``) and treats only a confirmed end as the end: an EOF while ``connected()`` is
    false is raised. ``paramiko.SFTPError``/``OSError`` as paramiko raises them."""
    kind, msg = sftp._request(CMD_OPENDIR, path)
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("unexpected answer to opendir")
    handle = msg.get_binary()
    entries = []
    while True:
        try:
            kind, msg = sftp._request(CMD_READDIR, handle)
        except EOFError:
            if not connected():
                raise
            break
        if kind != CMD_NAME:
            raise paramiko.SFTPError("unexpected answer to readdir")
        for _ in range(msg.get_int()):
            raw = msg.get_string()
            msg.get_string()  # the "ls -l" line
            attrs = paramiko.SFTPAttributes._from_msg(msg)
            if raw not in (b".", b".."):
                entries.append((decode_name(raw), attrs))
    sftp._request(CMD_CLOSE, handle)  # also proves the link survived the listing
    return entries
