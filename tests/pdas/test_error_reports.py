"""Error reports never show a secret: debug pages are off unless asked for, and Django's report of an
unexpected error (the debug page, the mail to admins) shows no variable holding a storage, TPS or login
password. Each test is the attack: an error raised while the password is a local variable, and the
report Django would write for it."""
from __future__ import annotations

import ftplib
import os
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.signals import got_request_exception
from django.db import OperationalError
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter

from connectors.errors import ConnectorError
from connectors.storage import StorageError
from connectors.tps import TpsError
from sites.connections import open_institution_tps, open_target
from tests.factories import InstitutionFactory, StorageTargetFactory

SECRET = "Vault-Pa55word-417"


def _development_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "PDAS_", "CELERY_", "DATABASE_URL"))}
    env.update(extra)
    return env


def _debug_setting(tmp_path: Path, **extra: str) -> str:
    result = subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "shell", "-c",
         "from django.conf import settings; print(settings.DEBUG)"],
        env=_development_env(PDAS_DATA_DIR=str(tmp_path), **extra), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def test_debug_is_off_in_development_unless_asked_for(tmp_path):
    assert _debug_setting(tmp_path) == "False"
    assert _debug_setting(tmp_path, DJANGO_DEBUG="1") == "True"
    assert _debug_setting(tmp_path, PDAS_ENV="production", DJANGO_DEBUG="1", DJANGO_SECRET_KEY="k" * 50,
                          DJANGO_ALLOWED_HOSTS="pdas.example") == "False"


def _report(exc: BaseException, request=None) -> str:
    """Django's report of ``exc`` as mailed to the admins: the HTML (which lists every frame's variables)
    and the text."""
    reporter = ExceptionReporter(request, type(exc), exc, exc.__traceback__, is_email=True)
    return reporter.get_traceback_html() + reporter.get_traceback_text()


def _failure(opener) -> BaseException:
    try:
        opener()
    except Exception as exc:
        return exc
    raise AssertionError("the opener did not fail")


@pytest.mark.django_db
def test_a_storage_login_that_breaks_unexpectedly_shows_no_password(monkeypatch):
    """The FTP server answers the login with something ftplib does not expect (error_proto): before, the raw
    exception went up with the password in the variables of four frames."""
    monkeypatch.setenv("PDAS_TEST_STORAGE_PASSWORD", SECRET)
    target = StorageTargetFactory(url="ftps://pdas@array.example:2121/archive",
                                  password_env="PDAS_TEST_STORAGE_PASSWORD")
    monkeypatch.setattr(ftplib.FTP_TLS, "connect", lambda self, host, port: "220 ready")
    monkeypatch.setattr(ftplib.FTP_TLS, "auth", lambda self: "234 go ahead")

    def garbled_reply(self, user="", passwd="", acct=""):
        raise ftplib.error_proto("garbled reply")

    monkeypatch.setattr(ftplib.FTP_TLS, "login", garbled_reply)

    failure = _failure(lambda: open_target(target))

    report = _report(failure)
    assert "PDAS_TEST_STORAGE_PASSWORD" in report or "open_target" in report  # the report is a real one
    assert SECRET not in report
    assert isinstance(failure, StorageError) and "garbled reply" in str(failure)
    assert "********" in report  # the variables are there, hidden


@pytest.mark.django_db
def test_a_storage_password_file_read_at_open_is_hidden_from_the_report(monkeypatch, tmp_path):
    password_file = tmp_path / "array.password"
    password_file.write_text(SECRET, encoding="utf-8")
    target = StorageTargetFactory(url="ftps://pdas@array.example/archive", password_file=str(password_file))
    monkeypatch.setattr(ftplib.FTP_TLS, "connect", lambda self, host, port: "220 ready")
    monkeypatch.setattr(ftplib.FTP_TLS, "auth", lambda self: "234 go ahead")
    monkeypatch.setattr(ftplib.FTP_TLS, "login", lambda self, user="", passwd="", acct="": 1 / 0)

    failure = _failure(lambda: open_target(target))

    assert SECRET not in _report(failure)
    assert isinstance(failure, StorageError)


@pytest.mark.django_db
def test_an_ssh_tps_that_breaks_unexpectedly_shows_no_password(monkeypatch, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("", encoding="utf-8")
    monkeypatch.setenv("PDAS_TEST_TPS_PASSWORD", SECRET)
    institution = InstitutionFactory(tps_url="ssh://pdas@tps.example/data/Patients",
                                     tps_password_env="PDAS_TEST_TPS_PASSWORD", tps_known_hosts=str(known_hosts))

    def unforeseen(self, hostname, **kwargs):
        raise ValueError("a library error no branch expected")

    monkeypatch.setattr(paramiko.SSHClient, "connect", unforeseen)

    failure = _failure(lambda: open_institution_tps(institution))

    assert SECRET not in _report(failure)
    assert isinstance(failure, TpsError) and isinstance(failure, ConnectorError)


@pytest.mark.django_db
@pytest.mark.django_db
def test_a_login_that_fails_with_a_server_error_shows_no_password(monkeypatch):
    """The database fails in the middle of checking a password: the 500 report (mailed to the admins)
    shows neither the posted password nor the variables holding it."""
    def database_down(self, request, username=None, password=None, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(ModelBackend, "authenticate", database_down)
    reports: list[str] = []

    def report(sender, request, **kwargs):
        reports.append(_report(sys.exc_info()[1], request))

    got_request_exception.connect(report)
    try:
        response = Client(raise_request_exception=False).post(reverse("login"),
                                                              {"username": "physicist", "password": SECRET})
    finally:
        got_request_exception.disconnect(report)

    assert response.status_code == 500
    assert len(reports) == 1 and "database is locked" in reports[0]
    assert SECRET not in reports[0] and SECRET not in response.content.decode()
