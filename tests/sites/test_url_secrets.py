"""A secret written into a connection URL as a query parameter (``?password=``, ``?token=`` ...) is refused
like ``user:password@host``, and no message PDAS writes about a connection (error, scan result, audit row)
repeats a secret a URL holds. Each test is the attack: the URL typed into the site file or the admin, or
already in a row saved before the rule, and the messages that follow."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from connectors.rv import url_problem as rv_url_problem
from connectors.storage import StorageError
from connectors.storage import url_problem as storage_url_problem
from connectors.tps import TpsError
from connectors.tps import url_problem as tps_url_problem
from connectors.urls import redact_url
from inventory.services.tps_sync import sync_institution
from lossdetect.services.scan import run_loss_scan
from sites.connections import open_target
from sites.models import Institution, StorageTarget
from sites.services.site_config import SiteConfigError, load_site_config
from tests.archiver.site_toml import make_site_toml
from tests.factories import InstitutionFactory, StorageTargetFactory, make_user

SECRET = "hunter2-in-a-query"
WHERE = "institution #1 (PUMCH)"
TARGET = f"{WHERE} storage #1 (array-1)"
URL_LINE = 'url = "sftp://archiver@storage-host:22/archive"'


@pytest.mark.parametrize(("url", "name"), [
    (f"sftp://host/x?password={SECRET}", "password"),
    (f"sftp://archiver@host/x?PASSWORD={SECRET}", "PASSWORD"),
    (f"ftps://archiver@host/x?mode=binary&Pass={SECRET}", "Pass"),
    (f"ftps://archiver@host/x?pwd={SECRET}", "pwd"),
    (f"sftp://archiver@host/x?Secret={SECRET}", "Secret"),
    (f"sftp://archiver@host/x?token={SECRET}", "token"),
    (f"sftp://archiver@host/x?KEY={SECRET}", "KEY"),
    (f"sftp://archiver@host/x?pass%77ord={SECRET}", "password"),
])
def test_every_family_refuses_a_secret_query_parameter_naming_it_not_its_value(url, name):
    for problem, where in ((storage_url_problem(url), "password_env or password_file"),
                           (tps_url_problem(url.replace("sftp://", "ssh://")), "tps_password_env or tps_key_file")):
        assert problem == f"the URL holds a secret in its query ({name}=...); remove it and use {where}"
    assert SECRET not in (rv_url_problem(f"mosaiq+postgresql://pdas@db/MOSAIQ?{url.partition('?')[2]}") or "-")
    assert rv_url_problem(f"csv:/data/rv.csv?{url.partition('?')[2]}").startswith("the URL holds a secret")


def test_harmless_query_parameters_are_not_secrets():
    assert storage_url_problem("sftp://archiver@host/x?keyboard=1") is None
    assert "secret" not in (rv_url_problem("mosaiq+postgresql://pdas@db/MOSAIQ?sslmode=require&sslkey=/k.pem") or "")
    assert rv_url_problem("mosaiq+postgresql://pdas@db/MOSAIQ?sslpassword=x").startswith("the URL holds a secret")


@pytest.mark.parametrize(("url", "shown"), [
    ("sftp://archiver:hunter2@host:22/x", "sftp://archiver:***@host:22/x"),
    ("mosaiq+mssql://sa:p@ss@db/M?timeout=5&Password=x&token=y", "mosaiq+mssql://sa:***@db/M?timeout=5&Password=***&token=***"),
    ("csv:/data/rv.csv?pwd=x#secret=y", "csv:/data/rv.csv?pwd=***#secret=***"),
    ("ftps://archiver@host/x?mode=binary", "ftps://archiver@host/x?mode=binary"),
    ("file:///srv/array", "file:///srv/array"),
])
def test_redact_url_keeps_where_and_drops_what_is_secret(url, shown):
    assert redact_url(url) == shown


@pytest.mark.django_db
@pytest.mark.parametrize(("replace", "expected"), [
    ({URL_LINE: f'url = "sftp://host/x?password={SECRET}"'},
     f"{TARGET}: url: the URL holds a secret in its query (password=...); remove it and use password_env or "
     "password_file"),
    ({'tps = "file://{root}/pinnacle/Patients"': f'tps = "file://{{root}}/pinnacle/Patients?Token={SECRET}"'},
     f"{WHERE}: tps: the URL holds a secret in its query (Token=...); remove it and use tps_password_env or "
     "tps_key_file"),
    ({'rv = "csv:{root}/rv/first_deliveries.csv"': f'rv = "mosaiq+postgresql://pdas@db/MOSAIQ?pwd={SECRET}"'},
     f"{WHERE}: rv: the URL holds a secret in its query (pwd=...); remove it and use rv_password_env"),
])
def test_load_site_config_refuses_a_secret_in_a_url_query(tmp_path, monkeypatch, replace, expected):
    site_toml = make_site_toml(tmp_path, monkeypatch)
    root = str(tmp_path)
    path = site_toml.write({old.replace("{root}", root): new.replace("{root}", root) for old, new in replace.items()})

    with pytest.raises(SiteConfigError) as caught:
        load_site_config(path=path)

    assert str(caught.value) == f"{path}: {expected}"
    assert not Institution.objects.exists()
    assert SECRET not in json.dumps(list(AuditEvent.objects.values("detail")))


@pytest.mark.django_db
def test_the_admin_refuses_a_secret_in_a_url_query():
    institution = InstitutionFactory(code="ALPHA")
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    response = client.post("/admin/sites/storagetarget/add/", {
        "institution": institution.pk, "name": "array", "url": f"sftp://archiver@host/x?password={SECRET}",
        "key_file": "/etc/pdas/id_ed25519", "known_hosts": "/etc/pdas/known_hosts", "priority": 0,
        "enabled": "on"})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["url"]
    assert errors == ["the URL holds a secret in its query (password=...); remove it and use password_env or "
                      "password_file"]
    assert not StorageTarget.objects.exists()
    assert SECRET not in json.dumps(list(AuditEvent.objects.values("detail")))


@pytest.mark.django_db
def test_a_tps_error_and_its_audit_row_never_hold_the_secret_of_a_saved_url():
    """A row saved before the rule (or written to the database directly) still connects nowhere with its
    secret shown: the error and the failed ``tps.sync`` row carry the URL redacted."""
    institution = InstitutionFactory(code="ALPHA", tps_url=f"file:///srv/tps/Patients?token={SECRET}")

    with pytest.raises(TpsError) as caught:
        sync_institution(institution=institution, actor="tester")

    row = AuditEvent.objects.get(event="tps.sync")
    assert SECRET not in str(caught.value) and SECRET not in json.dumps(row.detail)
    assert "file:///srv/tps/Patients?token=***" in row.detail["error"]


@pytest.mark.django_db
def test_a_loss_scan_failure_and_its_audit_row_never_hold_the_secret_of_the_rv_url(tmp_path):
    institution = InstitutionFactory(code="ALPHA",
                                     rv_url=f"mosaiq+sqlite://{tmp_path}/missing.sqlite?password={SECRET}")

    scan = run_loss_scan(institution=institution, window_from=dt.date(2024, 1, 1), window_to=dt.date(2024, 1, 31),
                         trigger="manual", actor="tester", refresh_tps=False)

    row = AuditEvent.objects.get(event="lossscan.run")
    assert scan.status == "failed" and "password=***" in scan.error
    assert SECRET not in scan.error and SECRET not in json.dumps(row.detail)


@pytest.mark.django_db
def test_a_storage_error_never_holds_the_secret_of_the_target_url():
    """A real failed connection (nothing listens on port 1) to a target whose URL holds a secret."""
    target = StorageTargetFactory(url=f"ftps://archiver:{SECRET}@127.0.0.1:1/archive?Token={SECRET}")

    with pytest.raises(StorageError) as caught:
        open_target(target, timeout=5)

    assert SECRET not in str(caught.value)
    assert str(caught.value).startswith("ftps://archiver:***@127.0.0.1:1/archive?Token=***: cannot connect")
