"""An archive admin configures their institution in the admin, but never where PDAS connects, which
secrets it sends there, or what it runs on the TPS host (docs/security.md): those fields are a
superuser's. Each test is the attack: a hostile archive admin posting them."""
from __future__ import annotations

import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from sites.models import Institution, StorageTarget
from sites.roles import ARCHIVE_ADMIN
from tests.factories import InstitutionFactory, StorageTargetFactory, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    inst = InstitutionFactory(code="ALPHA", tps_url="file:///srv/tps/Patients")
    target = StorageTargetFactory(institution=inst, name="array", url="file:///srv/array")
    admin_user = make_user("aa", roles=[ARCHIVE_ADMIN], institutions=[inst], is_staff=True)
    client = Client()
    client.force_login(admin_user)
    return inst, target, client


def _institution_form(inst: Institution, target: StorageTarget, **changes) -> dict:
    data = {
        "code": inst.code, "name": inst.name, "tps_url": inst.tps_url, "tps_password_env": "", "tps_key_file": "",
        "tps_known_hosts": "", "pending_group": inst.pending_group, "clinical_groups": json.dumps(inst.clinical_groups),
        "non_clinical_groups": json.dumps(inst.non_clinical_groups), "restore_group": "", "time_zone": inst.time_zone, "rv_url": "",
        "rv_password_env": "", "recourse_gap_days": 90, "lookback_days": 365, "skew_days": 1, "codec": "gzip",
        "codec_level": 0, "pack_script": "", "quarantine_dir": "", "quarantine_days": 30, "mrn_pattern": "",
        "notify_emails": json.dumps(inst.notify_emails), "planning_systems": json.dumps(inst.planning_systems),
        "storage_targets-TOTAL_FORMS": 1, "storage_targets-INITIAL_FORMS": 1,
        "storage_targets-MIN_NUM_FORMS": 0, "storage_targets-MAX_NUM_FORMS": 1000,
        "storage_targets-0-id": target.pk, "storage_targets-0-institution": inst.pk,
        "storage_targets-0-name": target.name, "storage_targets-0-url": target.url,
        "storage_targets-0-enabled": "on", "storage_targets-0-priority": 0,
    }
    # A field whose model default is callable (default=list) posts its initial value too, as a browser does.
    data.update({f"initial-{name}": data[name]
                 for name in ("clinical_groups", "non_clinical_groups", "notify_emails", "planning_systems")})
    data.update(changes)
    return data


def test_archive_admin_cannot_point_secrets_hosts_or_scripts_anywhere(site):
    inst, target, client = site
    response = client.post(f"/admin/sites/institution/{inst.pk}/change/", _institution_form(
        inst, target, tps_url="ssh://pdas@evil.example/Patients", tps_password_env="DJANGO_SECRET_KEY",
        tps_known_hosts="/etc/pdas/other-institution/known_hosts", pack_script="/tmp/evil.sh",
        quarantine_days=45, **{"storage_targets-0-url": "sftp://evil.example/x",
                               "storage_targets-0-password_env": "PDAS_OTHER_INSTITUTION_PASSWORD",
                               "storage_targets-0-priority": 3}))
    assert response.status_code == 302, response.content.decode()[:2000]
    inst.refresh_from_db()
    target.refresh_from_db()
    assert (inst.tps_url, inst.tps_password_env, inst.tps_known_hosts, inst.pack_script) == (
        "file:///srv/tps/Patients", "", "", "")
    assert (target.url, target.password_env) == ("file:///srv/array", "")
    assert inst.quarantine_days == 45 and target.priority == 3, "what an archive admin may change is saved"
    changes = AuditEvent.objects.filter(event="config.change").order_by("pk")
    assert [e.detail["fields"] for e in changes] == [["quarantine_days"], ["priority"]]


def test_archive_admin_sees_connection_settings_read_only(site):
    inst, target, client = site
    page = client.get(f"/admin/sites/institution/{inst.pk}/change/").content.decode()
    assert 'name="quarantine_days"' in page
    for field in ("tps_url", "tps_password_env", "pack_script", "rv_url", "storage_targets-0-url",
                  "storage_targets-0-password_env", "storage_targets-0-key_file"):
        assert f'name="{field}"' not in page, field


def test_archive_admin_cannot_add_or_delete_a_storage_target(site):
    inst, target, client = site
    assert client.get("/admin/sites/storagetarget/add/").status_code == 403
    response = client.post("/admin/sites/storagetarget/add/", {
        "institution": inst.pk, "name": "mine", "url": "sftp://evil.example/x", "password_env": "DJANGO_SECRET_KEY",
        "priority": 0, "enabled": "on"})
    assert response.status_code == 403
    assert client.post(f"/admin/sites/storagetarget/{target.pk}/delete/", {"post": "yes"}).status_code == 403
    assert list(StorageTarget.objects.values_list("name", flat=True)) == ["array"]
    response = client.post(f"/admin/sites/institution/{inst.pk}/change/", _institution_form(
        inst, target, **{"storage_targets-TOTAL_FORMS": 2, "storage_targets-1-institution": inst.pk,
                         "storage_targets-1-name": "mine", "storage_targets-1-url": "sftp://evil.example/x",
                         "storage_targets-1-priority": 0, "storage_targets-0-DELETE": "on"}))
    assert response.status_code in (200, 302)
    assert list(StorageTarget.objects.values_list("name", flat=True)) == ["array"]


def test_a_superuser_sets_connection_settings(site):
    inst, target, _ = site
    root = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    response = client.post(f"/admin/sites/institution/{inst.pk}/change/", _institution_form(
        inst, target, pack_script="/opt/site/pack.sh", **{"storage_targets-0-url": "file:///srv/array-2"}))
    assert response.status_code == 302, response.content.decode()[:2000]
    inst.refresh_from_db()
    target.refresh_from_db()
    assert inst.pack_script == "/opt/site/pack.sh" and target.url == "file:///srv/array-2"
    assert client.get("/admin/sites/storagetarget/add/").status_code == 200
