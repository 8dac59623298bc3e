"""Opening an institution's TPS, storage targets and R&V source with the secrets its configuration names.

The protocol code lives in ``connectors`` and knows nothing of models; this is the one place where a
configured row becomes a connection. Secrets come from ``connectors.secrets`` (``NAME`` or
``NAME_FILE``), the same lookup ``load_site_config`` and the admin forms check.

Each function here that looks up or passes on a secret is ``sensitive_variables()``: Django's error
reports (the debug page, the mail to admins) then show no variable of it nor of any frame it called,
the connectors' included (they are plain libraries without Django, so the marking is made here). The
openers turn every failure into the family's ``ConnectorError`` with the URL redacted.
"""
from __future__ import annotations

from pathlib import Path

from django.views.decorators.debug import sensitive_variables

from connectors.errors import SecretError
from connectors.rv import RvError, RvSource, open_rv_source
from connectors.secrets import require_secret
from connectors.storage import StorageBackend, StorageError, open_storage
from connectors.storage.encrypted import load_identities
from connectors.tps import TpsError, TpsSource, open_tps_source
from sites.models import Institution, StorageTarget


@sensitive_variables()
def institution_tps_password(institution: Institution) -> str | None:
    """The TPS password from the variable (or its ``_FILE`` twin) the institution names; None if it names none."""
    if not institution.tps_password_env:
        return None
    try:
        return require_secret(institution.tps_password_env, what=f"institution {institution.code}: tps_password_env")
    except SecretError as exc:
        raise TpsError(str(exc)) from None


@sensitive_variables()
def open_institution_tps(institution: Institution, *, connect_timeout: float = 15) -> TpsSource:
    """Open the institution's TPS with the secrets its configuration names."""
    return open_tps_source(institution.tps_url, password=institution_tps_password(institution),
                           key_file=institution.tps_key_file or None,
                           known_hosts=institution.tps_known_hosts or None, connect_timeout=connect_timeout)


@sensitive_variables()
def target_password(target: StorageTarget) -> str | None:
    """The target's secret from ``password_env`` (or its ``_FILE`` twin) or ``password_file``; None if none."""
    try:
        if target.password_env:
            return require_secret(target.password_env, what=f"storage {target.name}: password_env")
    except SecretError as exc:
        raise StorageError(str(exc)) from None
    if target.password_file:
        try:
            return Path(target.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StorageError(f"storage {target.name}: cannot read password_file {target.password_file}: "
                               f"{exc.strerror}") from None
    return None


@sensitive_variables()
def target_key_pair(target: StorageTarget) -> tuple[str | None, str | None]:
    """An s3 target's access key ID and secret key from ``access_key_env`` / ``secret_key_env`` (or their
    ``_FILE`` twins); (None, None) for a target that names neither."""
    try:
        access = (require_secret(target.access_key_env, what=f"storage {target.name}: access_key_env")
                  if target.access_key_env else None)
        secret = (require_secret(target.secret_key_env, what=f"storage {target.name}: secret_key_env")
                  if target.secret_key_env else None)
    except SecretError as exc:
        raise StorageError(str(exc)) from None
    return access, secret


@sensitive_variables()
def target_identities(target: StorageTarget) -> list:
    """The age identities that decrypt an encrypted target (``identity_file``, or ``identity_env`` and its
    ``_FILE`` twin). Raises ``IdentityMissing`` (a ``SecretError``) naming the target when it has none:
    restoring or rebuilding the index from an encrypted target needs it, archiving to it does not."""
    text = None
    if target.identity_env:
        text = require_secret(target.identity_env, what=f"storage {target.name}: identity_env")
    return load_identities(identity_file=target.identity_file, identity_text=text, target=str(target))


@sensitive_variables()
def open_target(target: StorageTarget, *, timeout: float = 30) -> StorageBackend:
    """Connect to a configured storage target.

    A target with ``encrypt_to`` opens like any other: what is written to it and read from it is the
    encrypted form (``archiver.services.transfer`` and ``connectors.storage.encrypted``), decided by the
    copy (``ArchiveCopy.encrypted``), never by this connection."""
    access_key, secret_key = target_key_pair(target)
    return open_storage(target.url, password=target_password(target), key_file=target.key_file or None,
                        known_hosts=target.known_hosts or None, ca_file=target.ca_file or None,
                        allow_plain_ftp=target.allow_plain_ftp, access_key=access_key, secret_key=secret_key,
                        allow_plain_http=target.allow_plain_http, timeout=timeout)


@sensitive_variables()
def open_institution_rv(institution: Institution) -> RvSource:
    """The institution's R&V source, with its password from ``rv_password_env`` and its site time."""
    if not institution.rv_url.strip():
        raise RvError(f"institution {institution.code} has no R&V source (rv_url is empty)")
    password = None
    if institution.rv_password_env:
        try:
            password = require_secret(institution.rv_password_env,
                                      what=f"institution {institution.code}: rv_password_env (the R&V password)")
        except SecretError as exc:
            raise RvError(str(exc)) from None
    return open_rv_source(institution.rv_url, password=password, zone=institution.zone)
