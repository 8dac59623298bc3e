"""Every kind of audit event, one member per keyword (docs/audit.md, "Every event keyword").

The values are the keywords stored in ``AuditEvent.event``; they never change, or old rows and the
auditors' searches would stop matching. ``record_event`` takes a member (or its exact keyword) and
refuses anything else, so a typo cannot start a new kind. A new kind is a new member here and a new
row in docs/audit.md (``tests/audit/test_docs.py`` holds the two in step).
"""
from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    # Logins and access
    AUTH_LOGIN = "auth.login"
    AUTH_LOGOUT = "auth.logout"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOCKOUT = "auth.lockout"
    ACCESS_DENIED = "access.denied"
    ACCESS_CHANGE = "access.change"
    # Configuration
    CONFIG_CHANGE = "config.change"
    CONFIG_LOAD = "config.load"
    # PDAS's own database
    DATABASE_BACKUP = "database.backup"
    DATABASE_RESTORE = "database.restore"
    # The TPS and curation
    TPS_SYNC = "tps.sync"
    CURATION_RUN = "curation.run"
    CURATION_VIEW = "curation.view"
    CURATION_ACKNOWLEDGE = "curation.acknowledge"
    CURATION_NOTIFY = "curation.notify"
    PATIENT_VIEW = "patient.view"
    # Archiving and removal
    ARCHIVE_RUN = "archive.run"
    ARCHIVERUN_VIEW = "archiverun.view"
    ARCHIVE_PACK = "archive.pack"
    ARCHIVE_TRANSFER = "archive.transfer"
    ARCHIVE_VERIFY = "archive.verify"
    ORIGINALS_REMOVE = "originals.remove"
    QUARANTINE_PURGE = "quarantine.purge"
    QUARANTINE_KEEP = "quarantine.keep"
    # Keeping archives whole
    ARCHIVE_CHECK = "archive.check"
    COPY_STATE = "copy.state"
    COPY_REPAIR = "copy.repair"
    ARCHIVE_UNSAFE = "archive.unsafe"  # written by releases before alerts; now alert.raise (archive_unsafe)
    ARCHIVE_RETENTION = "archive.retention"
    ARCHIVE_LEGAL_HOLD = "archive.legal_hold"
    ARCHIVE_LOCK_MIRROR = "archive.lock_mirror"
    RESTORE_DRILL = "restore.drill"
    RENDITION_MAKE = "rendition.make"
    RENDITION_DOWNLOAD = "rendition.download"
    RENDITION_CHECK = "rendition.check"
    RENDITION_COPY_STATE = "rendition.copy_state"
    RENDITION_REPAIR = "rendition.repair"
    RENDITION_REQUEST = "rendition.request"
    RENDITION_INDEX = "rendition.index"
    RESEARCH_EXPORT = "research.export"
    PSEUDONYM_VIEW = "pseudonym.view"
    STORAGE_VIEW = "storage.view"
    # Alerts
    ALERT_RAISE = "alert.raise"
    ALERT_CLEAR = "alert.clear"
    ALERT_NOTIFY = "alert.notify"
    # The archive index and restores
    ARCHIVE_INDEX = "archive.index"
    RESTORE_SEARCH = "restore.search"
    RESTORE_VIEW = "restore.view"
    RESTORE = "restore"
    # Loss detection
    LOSSSCAN_RUN = "lossscan.run"
    LOSSSCAN_VIEW = "lossscan.view"
    LOSSSCAN_NOTIFY = "lossscan.notify"
    PENDINGPLAN_VIEW = "pendingplan.view"
    MRNALIAS_CHANGE = "mrnalias.change"
    MRNALIAS_IMPORT = "mrnalias.import"
    MRNALIAS_VIEW = "mrnalias.view"
    # Reports and reconciliation
    REPORT_VIEW = "report.view"
    RECONCILE_IMPORT = "reconcile.import"
    RECONCILE_VIEW = "reconcile.view"
    # Pages and exports of any app, and the audit log itself
    ADMIN_VIEW = "admin.view"
    EXPORT = "export"
    AUDIT_VIEW = "audit.view"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_CHECKPOINT = "audit.checkpoint"


# Log-ins, log-outs, failed log-ins and lockouts: shown to superusers only (sites.access.scope_audit_events).
# They belong to no institution, and a failed log-in's user name may be someone's mistyped password.
LOGIN_EVENTS = frozenset({Event.AUTH_LOGIN, Event.AUTH_LOGOUT, Event.AUTH_LOGIN_FAILED, Event.AUTH_LOCKOUT})


class UnknownEvent(ValueError):
    """A keyword that is not an ``Event``: a typo, or a new kind not yet added to the enum and the docs."""


def as_event(value: Event | str) -> Event:
    """``value`` as a member; raises ``UnknownEvent`` for anything that is not one of the keywords."""
    try:
        return Event(value)
    except ValueError:
        raise UnknownEvent(f"unknown audit event kind {value!r}: use a member of audit.events.Event "
                           "(a new kind is added there and to docs/audit.md)") from None
