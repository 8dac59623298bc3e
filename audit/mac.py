"""The audit log's keyed MACs: a key the database does not hold, so a database writer cannot forge rows.

The hash chain (``AuditEvent.hash``) shows an edit, but whoever can write the database can recompute
every hash after an edit, or append a row with a correct hash. Each row therefore also carries
``mac``: HMAC-SHA256, under a key kept outside the database (``PDAS_AUDIT_MAC_KEY`` or the file
``PDAS_AUDIT_MAC_KEY_FILE``), over the row's hash (which covers its content and its link) and the
previous row's MAC. ``mac_key`` names the key by a fingerprint, so rows written before a key change
are checked with the earlier key (``PDAS_AUDIT_MAC_OLD_KEYS``). docs/audit.md, "Keyed MACs".

The settings read the keys once at start-up (``keys_from_environment``); the functions below read them
from the settings at each call, so tests can set ``PDAS_AUDIT_MAC_KEY``.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from django.core.exceptions import ImproperlyConfigured

KEY_VARIABLE = "PDAS_AUDIT_MAC_KEY"
OLD_KEYS_VARIABLE = "PDAS_AUDIT_MAC_OLD_KEYS"
MIN_KEY_LENGTH = 32
DEVELOPMENT_KEY_FILE = "audit_mac_key"
# Each use of a key is set apart by its own prefix, so a MAC of one kind can never pass for another.
ROW_PURPOSE = "pdas-audit-row-mac/1"
CHECKPOINT_PURPOSE = "pdas-audit-checkpoint/1"
KEY_ID_PURPOSE = b"pdas-audit-key-id/1"


@dataclass(frozen=True)
class MacKey:
    """A key and its fingerprint (``id``, 8 hex digits), which is what a row stores."""

    secret: bytes = field(repr=False)

    @property
    def id(self) -> str:
        return hmac.new(self.secret, KEY_ID_PURPOSE, hashlib.sha256).hexdigest()[:8]

    def sign(self, purpose: str, *parts: str) -> str:
        message = "\n".join((purpose, self.id, *parts)).encode("utf-8")
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


def _key(text: str, *, where: str) -> MacKey:
    if len(text) < MIN_KEY_LENGTH:
        raise ImproperlyConfigured(f"{where} is shorter than {MIN_KEY_LENGTH} characters: make one with "
                                   "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return MacKey(text.encode("utf-8"))


def _private_file_text(path: str, *, variable: str) -> str:
    """The text of a key file, refused unless only its owner may read it (a key anyone on the host can
    read is no key)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ImproperlyConfigured(f"{variable}={path}: not a regular file")
        if info.st_mode & 0o077:
            raise ImproperlyConfigured(f"{variable}={path}: readable or writable by group or others "
                                       f"(mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 it")
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ImproperlyConfigured(f"{variable}={path}: {exc.strerror}") from None


def _development_key(directory: Path) -> str:
    """A random key kept beside the development database (mode 0600), made once; never in production."""
    path = directory / DEVELOPMENT_KEY_FILE
    try:
        # O_EXCL: two processes starting at once keep one key (the loser reads the winner's).
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            text = path.read_text(encoding="ascii").strip()
            if text:
                return text
            time.sleep(0.02)  # the other process has created the file and is writing it
        raise ImproperlyConfigured(f"{path} is empty: delete it to have a new development key made") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key)
    return key


def _one(environ: Mapping[str, str], variable: str) -> tuple[str | None, str]:
    """The value of ``variable`` or of the file ``variable_FILE`` names (mode-checked), with where it came from."""
    value, file_name = environ.get(variable, ""), environ.get(f"{variable}_FILE", "")
    if value and file_name:
        raise ImproperlyConfigured(f"{variable} and {variable}_FILE are both set: set one")
    if file_name:
        return _private_file_text(file_name, variable=f"{variable}_FILE"), f"{variable}_FILE={file_name}"
    return (value or None), variable


def keys_from_environment(environ: Mapping[str, str], *, development_dir: Path | None) -> tuple[str | None, list[str]]:
    """(the current key, the earlier keys) as the settings hold them; ``ImproperlyConfigured`` (one line) for
    a key that is too short, a key file others may read, or both forms set. No key in the environment:
    ``development_dir`` given (development, tests): a key made once under it; None (production): no key,
    which ``manage.py check --deploy`` reports (``audit.checks``)."""
    current, where = _one(environ, KEY_VARIABLE)
    if current is not None:
        current = current.strip()
        _key(current, where=where)
    elif development_dir is not None:
        current = _development_key(development_dir)
    old_text, old_where = _one(environ, OLD_KEYS_VARIABLE)
    # Comma- or line-separated: a file holds one key a line.
    old = [item for item in re.split(r"[\s,]+", old_text or "") if item]
    for item in old:
        _key(item, where=f"a key of {old_where}")
    return current, old


def current_key() -> MacKey | None:
    """The key new rows and checkpoints are signed with; None when none is configured."""
    from django.conf import settings

    text = getattr(settings, "PDAS_AUDIT_MAC_KEY", None)
    return MacKey(text.encode("utf-8")) if text else None


def known_keys() -> dict[str, MacKey]:
    """Every configured key (current and earlier) by its id: what verification checks rows with."""
    from django.conf import settings

    keys = [MacKey(text.encode("utf-8")) for text in getattr(settings, "PDAS_AUDIT_MAC_OLD_KEYS", [])]
    current = current_key()
    if current is not None:
        keys.append(current)
    return {key.id: key for key in keys}


def row_mac(key: MacKey, row_hash: str, previous_mac: str) -> str:
    """The MAC of a row: over its hash (its content and its link) and the MAC of the row before it."""
    return key.sign(ROW_PURPOSE, row_hash, previous_mac)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
