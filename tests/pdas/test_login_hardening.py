"""Login hardening: lockout after repeated failures (audited), idle sessions, production security settings
that ``manage.py check --deploy`` accepts without a warning."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import make_user

PASSWORD = "correct-horse-battery-42"


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "PDAS_", "CELERY_", "DATABASE_URL"))}
    env.update(PDAS_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
               PDAS_AUDIT_MAC_KEY=secrets.token_urlsafe(32), DJANGO_ALLOWED_HOSTS="pdas.hospital.example",
               PDAS_DATA_DIR=str(tmp_path), **extra)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_with_production_settings_prints_no_warning(tmp_path):
    result = _manage(_production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert "WARNING" not in result.stderr


def test_check_deploy_warns_when_hsts_is_switched_off(tmp_path):
    """The check is real: it sees a weakened setting."""
    result = _manage(_production_env(tmp_path, DJANGO_SECURE_HSTS_SECONDS="0"), "check", "--deploy")

    assert "security.W004" in result.stdout + result.stderr


def test_production_settings_are_the_hardened_ones(tmp_path):
    script = ("from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
              "s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_AGE, s.SESSION_SAVE_EVERY_REQUEST, "
              "s.SESSION_EXPIRE_AT_BROWSER_CLOSE, s.DEBUG)")
    result = _manage(_production_env(tmp_path), "shell", "-c", script)

    assert result.stdout.split()[-8:] == ["True", "True", "31536000", "True", "1800", "True", "True", "False"]


@pytest.mark.django_db
def test_lockout_after_repeated_failures_is_audited_and_holds_for_the_right_password(client, settings):
    make_user("physicist", password=PASSWORD)
    url = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(url, {"username": "physicist", "password": "wrong-guess"}).status_code == 200
    assert not AuditEvent.objects.filter(event="auth.lockout").exists()

    locked = client.post(url, {"username": "physicist", "password": "wrong-guess"})
    right_password = client.post(url, {"username": "physicist", "password": PASSWORD})

    assert locked.status_code == right_password.status_code == 429
    assert "Account locked" in right_password.content.decode()
    assert client.get(reverse("home")).status_code == 302  # not logged in
    # The failure that reached the limit, then the attempt refused while locked (it restarts the wait).
    lockouts = AuditEvent.objects.filter(event="auth.lockout").order_by("id")
    assert [(e.actor, e.outcome, e.detail["username"]) for e in lockouts] == [("anonymous", "denied", "physicist")] * 2
    assert AuditEvent.objects.filter(event="auth.login_failed").count() == settings.AXES_FAILURE_LIMIT + 1
    assert not AuditEvent.objects.filter(event="auth.login").exists()


@pytest.mark.django_db
def test_behind_a_proxy_each_client_address_is_locked_on_its_own(client, settings):
    settings.PDAS_PROXY_COUNT = 1
    make_user("physicist", password=PASSWORD)
    url = reverse("login")
    for n in range(settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT):  # a password sprayed over names from one workstation
        client.post(url, {"username": f"guess{n}", "password": "x"}, HTTP_X_FORWARDED_FOR="forged, 10.0.0.7")

    from_there = client.post(url, {"username": "physicist", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="10.0.0.7")
    elsewhere = client.post(url, {"username": "physicist", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="10.0.0.8")

    assert (from_there.status_code, elsewhere.status_code) == (429, 302)
    assert AuditEvent.objects.filter(event="auth.lockout").first().detail["ip"] == "10.0.0.7"


@pytest.mark.django_db
def test_the_admin_login_is_locked_out_too(client, settings):
    make_user("root", password=PASSWORD, is_staff=True, is_superuser=True)
    url = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": "root", "password": "wrong-guess"})

    assert client.post(url, {"username": "root", "password": PASSWORD}).status_code == 429


@pytest.mark.django_db
def test_a_success_before_the_limit_resets_the_count(client, settings):
    make_user("physicist", password=PASSWORD)
    url = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(url, {"username": "physicist", "password": "wrong-guess"})
    assert client.post(url, {"username": "physicist", "password": PASSWORD}).status_code == 302
    client.post(reverse("logout"))

    assert client.post(url, {"username": "physicist", "password": "wrong-guess"}).status_code == 200  # not locked


@pytest.mark.django_db
def test_sessions_end_after_the_idle_time(client, settings):
    """The cookie lasts SESSION_COOKIE_AGE from the last request (saved on every request)."""
    make_user("physicist", password=PASSWORD)
    client.post(reverse("login"), {"username": "physicist", "password": PASSWORD})
    session = client.session
    session.set_expiry(-1)  # as if the idle time had passed
    session.save()

    assert client.get(reverse("home")).status_code == 302
