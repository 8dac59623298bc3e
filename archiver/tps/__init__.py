"""TPS sources: local directory and SSH. ``open_tps_source`` picks one from a URL."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from archiver.tps.base import CommandResult, Entry, TpsError, TpsSource, clean_relpath

__all__ = ["CommandResult", "Entry", "TpsError", "TpsSource", "clean_relpath", "open_institution_tps",
           "open_tps_source"]


def open_tps_source(url: str, *, password: str | None = None, key_file: str | None = None,
                    known_hosts: str | None = None, connect_timeout: float = 15) -> TpsSource:
    """Open ``file:///path/Patients`` or ``ssh://user@host:22/path/Patients``.

    A bad URL or an unknown scheme raises ``TpsError`` naming the URL; an unreachable root raises a
    retryable ``TpsError``.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # raises ValueError on "host:abc" or an out-of-range port
    except ValueError as exc:
        raise TpsError(f"TPS URL {url!r} is not valid: {exc}") from None
    path = unquote(parts.path)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise TpsError(f"TPS URL {url!r}: file:// takes a local path (file:///path), not host {parts.netloc!r}")
        if not path.startswith("/"):
            raise TpsError(f"TPS URL {url!r}: file:// needs an absolute path (file:///path/Patients)")
        from archiver.tps.local import LocalTpsSource

        return LocalTpsSource(Path(path), url=url)
    if parts.scheme == "ssh":
        if not parts.hostname:
            raise TpsError(f"TPS URL {url!r}: no host (ssh://user@host:22/path/Patients)")
        if not path.startswith("/") or path == "/":
            raise TpsError(f"TPS URL {url!r}: no absolute path of the Patients folder")
        from archiver.tps.ssh import SshTpsSource

        return SshTpsSource(url, password=password, key_file=key_file, known_hosts=known_hosts,
                            connect_timeout=connect_timeout)
    raise TpsError(f"TPS URL {url!r}: unsupported scheme {parts.scheme or '(none)'!r} (use file:// or ssh://)")


def institution_tps_password(institution) -> str | None:
    """The TPS password from the environment variable (or its ``_FILE`` twin) the institution names."""
    if not institution.tps_password_env:
        return None
    from django.core.exceptions import ImproperlyConfigured

    from pdas import env

    try:
        value = env.secret(institution.tps_password_env)
    except ImproperlyConfigured as exc:
        raise TpsError(f"institution {institution.code}: tps_password_env: {exc}") from None
    if value is None:
        raise TpsError(f"institution {institution.code}: tps_password_env names {institution.tps_password_env}, "
                       f"which is not set (nor {institution.tps_password_env}_FILE)")
    return value


def open_institution_tps(institution, *, connect_timeout: float = 15) -> TpsSource:
    """Open the institution's TPS with the secrets its configuration names."""
    return open_tps_source(institution.tps_url, password=institution_tps_password(institution),
                           key_file=institution.tps_key_file or None,
                           known_hosts=institution.tps_known_hosts or None, connect_timeout=connect_timeout)
