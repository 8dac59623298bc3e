"""Every page that shows a patient's data leaves an audit event naming the user, the patient's MRN, the
institution and the time (UTC); so does every export of it."""
from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from pdas.middleware import site_zone_name
from tests.access_world import MRN, clients_of, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def _pages(objects) -> list[tuple[str, str, dict]]:
    """(event keyword, URL, query) of the pages that name ALPHA's patient."""
    return [
        ("patient.view", reverse("curation:patient", args=[objects["tpspatient"].pk]), {}),
        ("curation.view", reverse("curation:index"), {"institution": "ALPHA", "tab": "naming"}),
        ("export", reverse("curation:index"), {"institution": "ALPHA", "tab": "naming", "_export": "csv"}),
        ("archiverun.view", reverse("archiver:run-detail", args=[objects["archiverun"].pk]), {}),
        ("export", reverse("archiver:run-detail", args=[objects["archiverun"].pk]), {"_export": "xlsx"}),
        ("restore.view", reverse("archiver:restore"), {}),
        ("restore.view", reverse("archiver:restore-detail", args=[objects["restorerecord"].pk]), {}),
        ("lossscan.view", reverse("lossdetect:scan-detail", args=[objects["lossscan"].pk]), {}),
        ("export", reverse("lossdetect:scan-detail", args=[objects["lossscan"].pk]), {"_export": "csv"}),
        ("pendingplan.view", reverse("lossdetect:pending-list"), {}),
        ("export", reverse("lossdetect:pending-list"), {"_export": "csv"}),
        ("restore.search", reverse("archiver:restore"), {"institution": objects["institution"].pk, "mrn": MRN}),
        ("reconcile.view", reverse("reports:reconcile-detail", args=[objects["reconciliationimport"].pk]), {}),
        ("admin.view", reverse("admin:inventory_tpspatient_change", args=[objects["tpspatient"].pk]), {}),
        ("admin.view", reverse("admin:inventory_archive_changelist"), {}),
    ]


def test_each_read_of_patient_data_is_logged_with_user_mrn_institution_and_utc_time(world):
    client = clients_of(world)["archive_admin"]  # reads everything, and is staff for the admin pages
    missing = []
    for event, url, query in _pages(world["objects"]):
        before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
        started = timezone.now()
        response = client.get(url, query)
        assert response.status_code == 200, (url, query, response.status_code)
        logged = AuditEvent.objects.filter(id__gt=before, event=event, actor="archive_admin", institution="ALPHA")
        row = next((row for row in logged if MRN in row.mrns), None)
        if row is None:
            missing.append(f"{url}?{query}: no {event} event naming {MRN}")
        else:
            assert started - dt.timedelta(seconds=1) <= row.at <= timezone.now()
            assert row.at.utcoffset() == dt.timedelta(0)  # stored and read back in UTC
    assert not missing, "\n".join(missing)


def test_the_auditor_page_logs_its_own_reads_and_exports(world):
    client = clients_of(world)["auditor"]

    client.get(reverse("audit:log"), {"mrn": MRN})
    client.get(reverse("audit:log"), {"mrn": MRN, "_export": "csv"})

    view, export = AuditEvent.objects.filter(actor="auditor").exclude(event="auth.login").order_by("id")
    assert (view.event, view.institution, view.mrns) == ("audit.view", "ALPHA", [MRN])
    assert (export.event, export.institution, export.mrns) == ("export", "ALPHA", [MRN])


def test_the_auditor_page_searches_by_user_event_mrn_dates_and_institution(world):
    from audit.services import record_event

    record_event(actor="zhang", event="restore", institution="ALPHA", mrns=["000777"])
    client = clients_of(world)["auditor"]
    # The page's dates are its zone's (pdas/middleware.py): near midnight UTC's date is another day.
    zone = zoneinfo.ZoneInfo(site_zone_name(world["users"]["auditor"]))
    today = timezone.localdate(timezone=zone)

    def events(**query):
        return [row.record.event for row in client.get(reverse("audit:log"), query).context["table"].paginated_rows]

    assert events(actor="zhang") == ["restore"]
    # The search by actor showed the row: reading it named 000777 too (audit.view), newest first.
    assert events(mrn="000777") == ["audit.view", "restore"]
    assert events(mrn="00077") == []  # an MRN is matched whole
    assert "restore" in events(event="rest", institution="ALPHA")
    assert events(day_from=str(today + dt.timedelta(days=1))) == []
    assert "restore" in events(day_from=str(today), day_to=str(today))


def test_the_export_carries_the_hashes(world):
    response = clients_of(world)["auditor"].get(reverse("audit:log"), {"_export": "csv"})
    header = response.content.decode().splitlines()[0]
    assert header.endswith("Previous hash,Hash,MAC,MAC key")
