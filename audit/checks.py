"""``manage.py check --deploy``: the audit log's MAC key must be set in production.

Without it audit rows are written without a MAC, and whoever can write the database can rewrite the
log unnoticed (docs/audit.md, "Keyed MACs"). Start-up is not refused: a missing key leaves the log as
it was before MACs, and this check is what says so.
"""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

from audit.mac import KEY_VARIABLE


@register(Tags.security, deploy=True)
def audit_mac_key_set(app_configs=None, **kwargs) -> list[Error]:
    if getattr(settings, "PDAS_AUDIT_MAC_KEY", None):
        return []
    return [Error(
        f"{KEY_VARIABLE} is not set: audit rows are written without a MAC, so whoever can write the database "
        "can rewrite the audit log unnoticed.",
        hint=(f"Set {KEY_VARIABLE}_FILE to a file of mode 0600 holding a random key of at least 32 characters "
              "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), kept off the database host, "
              "for the web server, the workers, beat and manage.py alike (docs/audit.md)."),
        id="audit.E001",
    )]
