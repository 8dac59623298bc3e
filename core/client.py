"""The address a request came from, for login lockouts and the audit log.

Behind reverse proxies (production: nginx or Apache in front of gunicorn) ``REMOTE_ADDR`` is the
proxy's, the same for every user; each proxy appends the address it saw to ``X-Forwarded-For``. With
``PDAS_PROXY_COUNT`` proxies, the client is the entry that many places from the right: entries further
left were written by the client and may be forged.
"""
from __future__ import annotations

from django.conf import settings


def client_address(request) -> str:
    count = settings.PDAS_PROXY_COUNT
    if count > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= count:
            return forwarded[-count]
    return request.META.get("REMOTE_ADDR", "")
