from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory.models import TpsPatient
from sites.models import Institution, StorageTarget
from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event
from lossdetect.models import Category, LossFinding, PendingPlan
from tests.factories import (
    ArchiveCopyFactory,
    ArchivedPlanFactory,
    InstitutionFactory,
    LossScanFactory,
    TpsPatientFactory,
    TpsPlanFactory,
)

pytestmark = pytest.mark.django_db
PDAS_APPS = {"archiver", "lossdetect", "audit"}


@pytest.fixture
def superuser():
    return User.objects.create_superuser("root-admin", password="not-used-here-123")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def one_of_everything():
    """At least one row of every PDAS model, so each change page has something to show."""
    from archiver.models import ArchiveRun, PatientArchiveTask, RestoreRecord
    from inventory.models import FixityCheck, QuarantinedPatient

    copy = ArchiveCopyFactory()
    archive, institution = copy.archive, copy.archive.institution
    ArchivedPlanFactory(archive=archive)
    plan = TpsPlanFactory(patient__institution=institution)
    FixityCheck.objects.create(copy=copy, method=FixityCheck.Method.LOCAL_HASH, outcome=FixityCheck.Outcome.PASS)
    run = ArchiveRun.objects.create(institution=institution, requested_by="scheduler")
    PatientArchiveTask.objects.create(run=run, patient=plan.patient, archive=archive)
    QuarantinedPatient.objects.create(institution=institution, archive=archive, tps_path="Institution_1/x",
                                      quarantine_path="/q/x", purge_after="2030-01-01T00:00:00Z")
    RestoreRecord.objects.create(institution=institution, archive=archive, requested_by="alice", destination="/tmp")
    scan = LossScanFactory(institution=institution)
    LossFinding.objects.create(scan=scan, mrn="000123", plan_label="LT BREAST", first_delivery="2024-01-02T08:00Z",
                               category=Category.FIRST_COURSE_LOST)
    PendingPlan.objects.create(institution=institution, mrn="000124", plan_label="RT LUNG",
                               first_delivery="2024-01-03T08:00Z", first_seen_scan=scan, last_checked_scan=scan)
    record_event(actor="system", event=Event.PATIENT_VIEW, mrns=["000123"])


def _admin_url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_pdas_model_is_registered():
    from django.apps import apps

    models = {m for app in PDAS_APPS for m in apps.get_app_config(app).get_models()}
    assert models <= set(admin.site._registry)


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_changelist_add_and_change_pages_answer(admin_client, superuser, one_of_everything, rf, model):
    model_admin = admin.site._registry[model]
    request = rf.get("/")
    request.user = superuser

    assert admin_client.get(_admin_url(model, "changelist")).status_code == 200
    add = admin_client.get(_admin_url(model, "add"))
    assert add.status_code == (200 if model_admin.has_add_permission(request) else 403)
    row = model.objects.first()
    if row is not None:
        assert admin_client.get(_admin_url(model, "change", row.pk)).status_code == 200


def test_computed_rows_are_view_only(admin_client, one_of_everything):
    archive = ArchiveCopyFactory._meta.model.objects.first().archive
    page = admin_client.get(_admin_url(type(archive), "change", archive.pk))

    assert page.context["has_change_permission"] is False
    assert admin_client.post(_admin_url(type(archive), "change", archive.pk), {"mrn": "999"}).status_code == 403
    assert admin_client.post(_admin_url(type(archive), "delete", archive.pk), {"post": "yes"}).status_code == 403
    archive.refresh_from_db()
    assert archive.mrn != "999"


def test_audit_events_cannot_be_changed_or_deleted(admin_client, superuser, rf):
    event = record_event(actor="alice", event="auth.login")
    change_url = _admin_url(AuditEvent, "change", event.pk)
    model_admin = admin.site._registry[AuditEvent]
    request = rf.get("/")
    request.user = superuser

    assert admin_client.post(change_url, {"actor": "mallory", "event": "x"}).status_code == 403
    assert admin_client.post(_admin_url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    bulk = admin_client.post(_admin_url(AuditEvent, "changelist"),
                             {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    assert bulk.status_code == 200  # the action does not exist: the list is shown again
    assert model_admin.get_actions(request) == {}
    assert not model_admin.has_add_permission(request) and not model_admin.has_delete_permission(request)
    assert AuditEvent.objects.get(pk=event.pk).actor == "alice"
    assert b'name="action"' not in admin_client.get(_admin_url(AuditEvent, "changelist")).content


def _institution_post(**overrides) -> dict:
    data = {
        "code": "PUMCH", "name": "Radiation Oncology", "tps_url": "file:///data/pinnacle/Patients",
        "tps_password_env": "", "tps_key_file": "", "tps_known_hosts": "", "pending_group": "ToArchive",
        "clinical_groups": '["Clinical"]', "non_clinical_groups": '["Research"]', "restore_group": "",
        "rv_url": "csv:/data/rv/first.csv", "rv_password_env": "", "recourse_gap_days": "90",
        "lookback_days": "365", "skew_days": "1", "time_zone": "Asia/Shanghai", "codec": "gzip",
        "codec_level": "0", "pack_script": "", "quarantine_dir": "", "quarantine_days": "30", "mrn_pattern": "",
        "notify_emails": "[]", "planning_systems": '["Pinnacle", "ADAC", "Philips"]',
        # What the browser sends back for fields with a callable default (Django's show_hidden_initial).
        "initial-clinical_groups": '["Clinical"]', "initial-non_clinical_groups": '["Research"]',
        "initial-notify_emails": "[]", "initial-planning_systems": '["Pinnacle", "ADAC", "Philips"]',
        "storage_targets-TOTAL_FORMS": "0", "storage_targets-INITIAL_FORMS": "0",
        "storage_targets-MIN_NUM_FORMS": "0", "storage_targets-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_saving_an_institution_is_audited_with_the_changed_fields(admin_client):
    institution = InstitutionFactory(code="PUMCH", name="Radiation Oncology", tps_url="file:///data/pinnacle/Patients",
                                     clinical_groups=["Clinical"], non_clinical_groups=["Research"],
                                     rv_url="csv:/data/rv/first.csv")
    target = {"storage_targets-TOTAL_FORMS": "1", "storage_targets-0-name": "array-1",
              "storage_targets-0-url": "ftps://archiver@storage/archive", "storage_targets-0-password_env": "PW",
              "storage_targets-0-priority": "0", "storage_targets-0-enabled": "on"}

    response = admin_client.post(_admin_url(Institution, "change", institution.pk),
                                 _institution_post(lookback_days="400", **target))

    assert response.status_code == 302, response.context["adminform"].form.errors
    events = {e.object_type: e for e in AuditEvent.objects.filter(event="config.change")}
    assert events["Institution"].detail == {"action": "change", "row": "PUMCH (Radiation Oncology)",
                                            "fields": ["lookback_days"]}
    assert events["Institution"].actor == "root-admin" and events["Institution"].institution == "PUMCH"
    assert events["StorageTarget"].detail["action"] == "add"
    assert {"name", "url", "password_env"} <= set(events["StorageTarget"].detail["fields"])
    assert StorageTarget.objects.get().url == "ftps://archiver@storage/archive"


def test_the_admin_applies_the_site_toml_rules(admin_client):
    response = admin_client.post(_admin_url(Institution, "add"), _institution_post(
        tps_url="ssh://pinnacle@tps-host/Patients", clinical_groups='["ToArchive"]'))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "tps_known_hosts" in errors and "host keys are pinned" in errors["tps_known_hosts"][0]
    assert "is the pending_group" in errors["clinical_groups"][0]
    assert not Institution.objects.exists() and not AuditEvent.objects.filter(event="config.change").exists()


def test_storage_target_admin_refuses_plain_ftp_and_audits_a_save(admin_client):
    institution = InstitutionFactory(code="PUMCH")
    data = {"institution": institution.pk, "name": "nas", "url": "ftp://archiver@nas/archive", "priority": "0",
            "enabled": "on"}

    refused = admin_client.post(_admin_url(StorageTarget, "add"), data)
    accepted = admin_client.post(_admin_url(StorageTarget, "add"), {**data, "allow_plain_ftp": "on"})

    assert "plain ftp:// sends the password" in str(refused.context["adminform"].form.errors["url"])
    assert accepted.status_code == 302
    event = AuditEvent.objects.get(event="config.change")
    assert event.detail["action"] == "add" and "allow_plain_ftp" in event.detail["fields"]


def test_institutions_cannot_be_deleted_from_the_admin(admin_client):
    institution = InstitutionFactory()

    assert admin_client.post(_admin_url(Institution, "delete", institution.pk), {"post": "yes"}).status_code == 403
    assert Institution.objects.filter(pk=institution.pk).exists()


def test_reading_patient_pages_is_audited_with_the_mrns_shown(admin_client):
    institution = InstitutionFactory(code="PUMCH")
    TpsPatientFactory(mrn="000777", institution=institution)
    patient = TpsPatientFactory(mrn="000888", institution=institution)

    admin_client.get(_admin_url(type(patient), "changelist"))
    admin_client.get(_admin_url(type(patient), "change", patient.pk))

    listing, detail = AuditEvent.objects.filter(event="admin.view").order_by("id")
    assert listing.mrns == ["000777", "000888"] and listing.detail["model"] == "inventory.tpspatient"
    assert detail.mrns == ["000888"] and detail.detail["object_id"] == str(patient.pk)
    assert listing.institution == detail.institution == "PUMCH"


def test_a_list_spanning_institutions_is_audited_once_per_institution(admin_client):
    TpsPatientFactory(mrn="000777", institution=InstitutionFactory(code="A"))
    TpsPatientFactory(mrn="000888", institution=InstitutionFactory(code="B"))

    admin_client.get(_admin_url(TpsPatient, "changelist"))

    events = AuditEvent.objects.filter(event="admin.view").order_by("institution")
    assert [(e.institution, e.mrns) for e in events] == [("A", ["000777"]), ("B", ["000888"])]


@pytest.mark.parametrize("factory", [TpsPlanFactory, ArchiveCopyFactory, ArchivedPlanFactory],
                         ids=lambda f: f._meta.model.__name__)
def test_patient_lists_cost_no_query_per_row(admin_client, factory):
    # One institution: a list writes one audit event per institution shown, whatever its rows.
    url = _admin_url(factory._meta.model, "changelist")
    institution = InstitutionFactory()
    within = {TpsPlanFactory: {"patient__institution": institution},
              ArchiveCopyFactory: {"archive__institution": institution},
              ArchivedPlanFactory: {"archive__institution": institution}}[factory]
    factory(**within)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    factory.create_batch(8, **within)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)

    assert len(many.captured_queries) == len(few.captured_queries)
