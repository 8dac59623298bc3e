"""Login audit: every log-in, log-out, failed log-in and lockout leaves an audit event.

A failed attempt records the user name that was tried and where from, never the password. A name that
is no account is often a password typed into the wrong box, and the audit log is kept for good: such a
name is stored only as a keyed hash (``hmac:`` and 16 hex digits, ``logged_name``), which tells repeated
attempts with one name apart from attempts with many without keeping the name. The name of an
existing account is stored as it is (it names who was attacked). Only superusers see these events
(``sites.access.scope_audit_events``).
"""
from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.utils.crypto import salted_hmac

from audit.models import AuditEvent
from audit.actors import ANONYMOUS
from audit.events import Event
from audit.services import record_event
from core.client import client_address


NAME_HASH_SALT = "pdas.audit.failed-login-name"  # keys the hash apart from every other use of SECRET_KEY


def logged_name(username: str) -> str:
    """What the audit log keeps of a user name tried at a login: the name of an existing account as it is,
    any other as ``hmac:`` + 16 hex digits of HMAC-SHA256 keyed by SECRET_KEY (the same name gives the same
    value until the key changes; without the key it cannot be turned back or guessed at)."""
    user_model = get_user_model()
    if not username or user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
        return username
    return "hmac:" + salted_hmac(NAME_HASH_SALT, username, algorithm="sha256").hexdigest()[:16]


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
                 detail={"username": logged_name(username), **_client(request)})


@receiver(user_locked_out, dispatch_uid="pdas.audit.lockout")
def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """django-axes locked a (user name, address) pair or an address after too many failures (pdas/lockout.py)."""
    record_event(actor=ANONYMOUS, event=Event.AUTH_LOCKOUT, outcome=AuditEvent.Outcome.DENIED,
                 detail={"username": logged_name(username or ""), **_client(request)})
