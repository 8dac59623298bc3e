"""Login audit: every log-in, log-out, failed log-in and lockout leaves an audit event.

A failed attempt records the user name that was tried and where from, never the password.
"""
from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.models import AuditEvent
from audit.actors import ANONYMOUS
from audit.events import Event
from audit.services import record_event
from core.client import client_address


def _client(request) -> dict:
    if request is None:
        return {}
    return {"ip": client_address(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200]}


@receiver(user_logged_in, dispatch_uid="pdas.audit.login")
def audit_login(sender, request, user, **kwargs) -> None:
    record_event(actor=user, event=Event.AUTH_LOGIN, detail=_client(request))


@receiver(user_logged_out, dispatch_uid="pdas.audit.logout")
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is None:  # logging out without a session: nothing happened
        return
    record_event(actor=user, event=Event.AUTH_LOGOUT, detail=_client(request))


@receiver(user_login_failed, dispatch_uid="pdas.audit.login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or "")
    record_event(actor=ANONYMOUS, event=Event.AUTH_LOGIN_FAILED, outcome=AuditEvent.Outcome.DENIED,
                 detail={"username": username, **_client(request)})


@receiver(user_locked_out, dispatch_uid="pdas.audit.lockout")
def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """django-axes locked a user name or an address after too many failures (settings.AXES_*)."""
    record_event(actor=ANONYMOUS, event=Event.AUTH_LOCKOUT, outcome=AuditEvent.Outcome.DENIED,
                 detail={"username": username or "", **_client(request)})
