"""TPS sources: local directory and SSH. ``open_tps_source`` picks one from a URL."""
from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import unquote, urlsplit

from connectors.ssh import SshAddress
from connectors.errors import ConnectorError, unforeseen
from connectors.urls import file_url_problem, inline_password_problem, redact_url
from connectors.tps.base import CommandResult, Entry, TpsError, TpsSource, clean_relpath

__all__ = ["CommandResult", "Entry", "TpsError", "TpsSource", "clean_relpath", "open_tps_source", "relative_to_root", "url_problem",
           "url_shape_problem"]


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a TPS location (``file:///abs`` or ``ssh://user@host[:port]/abs``), or None: the one
    check of a TPS URL: the site configuration asks all of it, ``open_tps_source`` its shape (a password in
    the URL is a configuration rule: the opener gets the password apart)."""
    return inline_password_problem(url, "tps_password_env or tps_key_file") or url_shape_problem(url)


def url_shape_problem(url: str) -> str | None:
    """The protocol's own rules for the URL (no inline-password rule), or None: what the opener checks."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return file_url_problem(url)
    if scheme == "ssh":
        try:
            SshAddress.from_url(url, schemes=("ssh",))
        except ValueError as exc:
            return str(exc)
        return None
    return (f"{redact_url(url)}: unsupported scheme {scheme or '(none)'!r}: use file:///absolute/path or "
            "ssh://user@host[:port]/absolute/path")


def open_tps_source(url: str, *, password: str | None = None, key_file: str | None = None,
                    known_hosts: str | None = None, connect_timeout: float = 15) -> TpsSource:
    """Open ``file:///path/Patients`` or ``ssh://user@host:22/path/Patients``.

    A bad URL or an unknown scheme raises ``TpsError`` naming the URL (redacted); an unreachable root raises a
    retryable ``TpsError``; an unforeseen exception of a library becomes a ``TpsError`` too, with the
    library's frames dropped (the caller hides the frames from here up, which hold ``password``).
    """
    try:
        return _open(url, password=password, key_file=key_file, known_hosts=known_hosts,
                     connect_timeout=connect_timeout)
    except ConnectorError:
        raise
    except Exception as exc:
        raise TpsError(f"TPS URL {redact_url(url)!r}: cannot connect: {unforeseen(exc, secret=password)}") from None


def _open(url: str, *, password: str | None, key_file: str | None, known_hosts: str | None,
          connect_timeout: float) -> TpsSource:
    if problem := url_shape_problem(url.strip()):
        raise TpsError(problem)
    shown = redact_url(url)
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError on "host:abc" or an out-of-range port
    except ValueError as exc:
        raise TpsError(f"TPS URL {shown!r} is not valid: {exc}") from None
    path = unquote(parts.path)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise TpsError(f"TPS URL {shown!r}: file:// takes a local path (file:///path), not host "
                           f"{urlsplit(shown).netloc!r}")
        if not path.startswith("/"):
            raise TpsError(f"TPS URL {shown!r}: file:// needs an absolute path (file:///path/Patients)")
        from connectors.tps.local import LocalTpsSource

        return LocalTpsSource(Path(path), url=url)
    if parts.scheme == "ssh":
        if not parts.hostname:
            raise TpsError(f"TPS URL {shown!r}: no host (ssh://user@host:22/path/Patients)")
        if not path.startswith("/") or path == "/":
            raise TpsError(f"TPS URL {shown!r}: no absolute path of the Patients folder")
        from connectors.tps.ssh import SshTpsSource

        return SshTpsSource(url, password=password, key_file=key_file, known_hosts=known_hosts,
                            connect_timeout=connect_timeout)
    raise TpsError(f"TPS URL {shown!r}: unsupported scheme {parts.scheme or '(none)'!r} (use file:// or ssh://)")


def relative_to_root(folder: str, tps_url: str) -> str | None:
    """``folder`` (absolute on the TPS host) relative to the root ``tps_url`` names, or None when outside."""
    root = posixpath.normpath(unquote(urlsplit(tps_url).path) or "/")
    folder = posixpath.normpath(folder)
    if not folder.startswith(root.rstrip("/") + "/"):
        return None
    return posixpath.relpath(folder, root)
