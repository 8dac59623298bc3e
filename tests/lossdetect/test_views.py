"""Loss detection pages: scan list and manual scan, the six tabs, exports, the pending-archive table."""
from __future__ import annotations

import csv
import datetime as dt
import io

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from lossdetect.models import LossFinding, LossScan, MrnAlias, OtherTpsRecord, PendingPlan
from demo_site.rv import rv_plan, write_csv
from tests.factories import InstitutionFactory, LossScanFactory, make_user

CATEGORIES = ["first_course_lost", "first_course_unarchived", "first_course_archived", "recourse_lost",
              "recourse_unarchived", "recourse_archived"]


@pytest.fixture
def scan(db):
    scan = LossScanFactory(institution=InstitutionFactory(code="PUMCH"), status="done", window_from=dt.date(2024, 3, 4),
                           window_to=dt.date(2024, 3, 10),
                           summary={"total": 7, "pending": 2, "checked": 7, "first_course_lost": 2, "recourse_lost": 1})
    when = dt.datetime(2024, 3, 5, 1, tzinfo=dt.timezone.utc)
    for i, category in enumerate(CATEGORIES + ["first_course_lost"]):
        LossFinding.objects.create(scan=scan, mrn=f"MRN{i}", patient_name="张三", plan_label=f"PLAN {i}",
                                   first_delivery=when, category=category,
                                   found_in="Research:Institution_2/Mount_0/Patient_5" if i == 6 else "")
    return scan


def test_pages_need_a_login(client, scan):
    for url in [reverse("lossdetect:scan-list"), reverse("lossdetect:scan-detail", args=[scan.pk]),
                reverse("lossdetect:pending-list")]:
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert client.post(reverse("lossdetect:scan-start")).status_code == 302
    assert LossScan.objects.count() == 1


def test_scan_list_shows_windows_and_totals(admin_client, scan, django_assert_max_num_queries):
    for _ in range(5):
        LossScanFactory(institution=scan.institution, status="failed", error="R&V source cannot be read")
    with django_assert_max_num_queries(13):  # a fixed number, whatever the scans (one reads the default window)
        response = admin_client.get(reverse("lossdetect:scan-list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "2024-03-04 – 2024-03-10" in html and "R&amp;V source cannot be read" in html
    rows = response.context["table"].as_values()
    header, first = next(rows), next(r for r in rows if r[0] == scan.pk)
    assert header[:5] == ["Scan", "Institution", "Started", "Trigger", "Window"]
    assert first[header.index("Plans checked")] == 7
    assert first[header.index("First-course lost")] == 2 and first[header.index("Re-course lost")] == 1


def test_manual_scan_of_any_window_runs_and_opens_its_page(admin_client, db, tmp_path, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    monkeypatch.setattr("inventory.services.tps_sync.sync_institution", lambda **kwargs: None)
    rv = write_csv(tmp_path / "rv.csv", [rv_plan("1", "P", dt.datetime(2023, 12, 30, 9))])
    institution = InstitutionFactory(code="SH", rv_url=f"csv:{rv}")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("lossdetect:scan-start"), {
            "institution": institution.pk, "window_from": "2023-12-01", "window_to": "2024-01-31"})
    scan = LossScan.objects.get()
    assert response.status_code == 302 and response.url == reverse("lossdetect:scan-detail", args=[scan.pk])
    assert (scan.trigger, scan.requested_by, scan.status) == ("manual", "admin", "done")
    assert scan.summary["first_course_lost"] == 1

    response = admin_client.post(reverse("lossdetect:scan-start"), {
        "institution": institution.pk, "window_from": "2024-02-01", "window_to": "2024-01-01"}, follow=True)
    assert "The window starts after it ends." in response.content.decode()
    assert LossScan.objects.count() == 1


def test_detail_has_six_coloured_tabs_with_counts_and_audits_the_view(admin_client, scan,
                                                                       django_assert_max_num_queries):
    with django_assert_max_num_queries(17):  # fixed (one reads the user's time zone)
        response = admin_client.get(reverse("lossdetect:scan-detail", args=[scan.pk]))
    tabs = response.context["tabs"]
    assert [(t["value"], t["count"]) for t in tabs] == [
        *((c, 2 if c == "first_course_lost" else 1) for c in CATEGORIES), ("other_tps", 0)]
    assert [t["colour"] for t in tabs] == ["danger", "warning", "success", "danger", "warning", "success", "secondary"]
    assert tabs[0]["active"]
    html = response.content.decode()
    assert 'class="nav-link active fw-semibold text-danger"' in html
    assert "Research:Institution_2/Mount_0/Patient_5" in html
    event = AuditEvent.objects.get(event="lossscan.view")
    assert (event.mrns, event.institution, event.object_id) == (["MRN0", "MRN6"], "PUMCH", str(scan.pk))

    response = admin_client.get(reverse("lossdetect:scan-detail", args=[scan.pk]), {"tab": "recourse_archived"})
    assert [row.record.mrn for row in response.context["table"].paginated_rows] == ["MRN5"]
    response = admin_client.get(reverse("lossdetect:scan-detail", args=[scan.pk]),
                                {"tab": "first_course_lost", "mrn": "mrn6"})
    assert [row.record.mrn for row in response.context["table"].paginated_rows] == ["MRN6"]


def test_failed_scan_says_unknown(admin_client, db):
    failed = LossScanFactory(status="failed", error="R&V source of X cannot be read: csv:/x: cannot read")
    html = admin_client.get(reverse("lossdetect:scan-detail", args=[failed.pk])).content.decode()
    assert "Unknown: the scan could not run." in html and "csv:/x: cannot read" in html
    assert "data-category=" not in html and "nav-tabs" not in html, "no category counts under the unknown banner"


def test_tab_exports_csv_and_xlsx_and_audits_them(admin_client, scan):
    url = reverse("lossdetect:scan-detail", args=[scan.pk])
    response = admin_client.get(url, {"tab": "first_course_lost", "_export": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert f'loss-scan-{scan.pk}-first_course_lost.csv' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["MRN", "Patient name", "Plan label"]
    assert sorted(r[0] for r in rows[1:]) == ["MRN0", "MRN6"]
    assert {r[rows[0].index("Category")] for r in rows[1:]} == {"first_course_lost"}
    assert rows[1][rows[0].index("First delivery")].endswith("+08:00"), "the site's zone (Asia/Shanghai), with it"
    event = AuditEvent.objects.get(event="export")
    assert event.mrns == ["MRN0", "MRN6"] and event.detail["rows"] == 2 and event.detail["format"] == "csv"
    assert not AuditEvent.objects.filter(event="lossscan.view").exists()

    response = admin_client.get(url, {"tab": "recourse_lost", "_export": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert [c.value for c in sheet[2]][:3] == ["MRN3", "张三", "PLAN 3"]


def test_pending_table_age_filters_and_export(admin_client, scan, django_assert_max_num_queries):
    now = timezone.now()
    for mrn, days, status in [("OLD", 40, "pending"), ("NEW", 3, "pending"), ("DONE", 50, "released")]:
        PendingPlan.objects.create(institution=scan.institution, mrn=mrn, plan_label="P", status=status,
                                   first_delivery=now - dt.timedelta(days=days, hours=1), first_seen_scan=scan,
                                   last_checked_scan=scan, tps_path=f"Institution_1/Mount_0/Patient_{days}")
    url = reverse("lossdetect:pending-list")
    with django_assert_max_num_queries(15):  # no query per row
        response = admin_client.get(url)
    values = list(response.context["table"].as_values())
    header = values[0]
    assert [(r[header.index("MRN")], r[header.index("Age (days)")]) for r in values[1:]] == [("OLD", 40), ("NEW", 3)]
    assert AuditEvent.objects.get(event="pendingplan.view").mrns == ["NEW", "OLD"]

    newest_first = admin_client.get(url, {"sort": "-age"}).context["table"]
    assert [row.record.mrn for row in newest_first.paginated_rows] == ["OLD", "NEW"]
    assert [row.record.mrn for row in admin_client.get(url, {"sort": "age"}).context["table"].paginated_rows] == [
        "NEW", "OLD"]
    assert [row.record.mrn for row in admin_client.get(url, {"min_age": 30}).context["table"].paginated_rows] == ["OLD"]
    everything = admin_client.get(url, {"status": ""}).context["table"]
    assert sorted(row.record.mrn for row in everything.paginated_rows) == ["DONE", "NEW", "OLD"]

    response = admin_client.get(url, {"_export": "csv"})
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert sorted(r[rows[0].index("MRN")] for r in rows[1:]) == ["NEW", "OLD"]
    assert AuditEvent.objects.get(event="export").mrns == ["NEW", "OLD"]


def test_a_manual_scan_returns_at_once_and_its_page_follows_it(admin_client, db, settings,
                                                               django_capture_on_commit_callbacks):
    """Outside tests the scan runs in the background (core.dispatch): the POST only queues it."""
    settings.PDAS_DISPATCH_INLINE = False
    institution = InstitutionFactory(code="SH", rv_url="csv:/nonexistent.csv")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:  # the test's transaction never commits
        response = admin_client.post(reverse("lossdetect:scan-start"), {
            "institution": institution.pk, "window_from": "2024-01-01", "window_to": "2024-01-31"})
    scan = LossScan.objects.get()
    assert response.url == reverse("lossdetect:scan-detail", args=[scan.pk]) and len(callbacks) == 1
    assert scan.status == "queued"
    html = admin_client.get(response.url).content.decode()
    assert f'data-job-status-url="{reverse("lossdetect:scan-status", args=[scan.pk])}"' in html
    status = admin_client.get(reverse("lossdetect:scan-status", args=[scan.pk])).json()
    assert (status["status"], status["finished"]) == ("queued", False)


def test_other_planning_systems_have_their_own_tab_and_export(admin_client, scan, django_assert_max_num_queries):
    when = dt.datetime(2024, 3, 6, 1, tzinfo=dt.timezone.utc)
    for i, system in enumerate(["Elekta Monaco", "Varian Medical Systems Eclipse"]):
        OtherTpsRecord.objects.create(scan=scan, mrn=f"OTHER{i}", patient_name="李四", plan_label=f"HN {i}",
                                      first_delivery=when, planning_system=system, course=1)
    url = reverse("lossdetect:scan-detail", args=[scan.pk])
    with django_assert_max_num_queries(17):  # fixed (one reads the user's time zone)
        response = admin_client.get(url, {"tab": "other_tps"})
    tabs = {t["value"]: t for t in response.context["tabs"]}
    assert tabs["other_tps"]["count"] == 2 and tabs["other_tps"]["active"]
    values = list(response.context["table"].as_values())
    header = values[0]
    assert [(r[header.index("MRN")], r[header.index("Planning system")]) for r in values[1:]] == [
        ("OTHER0", "Elekta Monaco"), ("OTHER1", "Varian Medical Systems Eclipse")]
    html = response.content.decode()
    assert 'id="other-tps-note"' in html and "Pinnacle, ADAC, Philips" in html
    assert AuditEvent.objects.get(event="lossscan.view").mrns == ["OTHER0", "OTHER1"]
    filtered = admin_client.get(url, {"tab": "other_tps", "planning_system": "monaco"}).context["table"]
    assert [row.record.mrn for row in filtered.paginated_rows] == ["OTHER0"]

    response = admin_client.get(url, {"tab": "other_tps", "_export": "csv"})
    assert f"loss-scan-{scan.pk}-other_tps.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["MRN", "Patient name", "Plan label"] and "Planning system" in rows[0]
    assert sorted(r[0] for r in rows[1:]) == ["OTHER0", "OTHER1"]
    assert AuditEvent.objects.get(event="export").mrns == ["OTHER0", "OTHER1"]


def test_findings_show_the_patients_other_mrns(admin_client, scan):
    LossFinding.objects.filter(mrn="MRN0").update(also_known_as=["OLD0", "OLDER0"])
    url = reverse("lossdetect:scan-detail", args=[scan.pk])
    response = admin_client.get(url)
    values = list(response.context["table"].as_values())
    header = values[0]
    assert {r[0]: r[header.index("Also known as")] for r in values[1:]} == {"MRN0": "OLD0, OLDER0", "MRN6": ""}
    assert "OLD0, OLDER0" in response.content.decode()
    assert AuditEvent.objects.get(event="lossscan.view").mrns == ["MRN0", "MRN6", "OLD0", "OLDER0"]
    rows = list(csv.reader(io.StringIO(admin_client.get(url, {"_export": "csv"}).content.decode("utf-8-sig"))))
    assert rows[1 + [r[0] for r in rows[1:]].index("MRN0")][rows[0].index("Also known as")] == "OLD0, OLDER0"


def test_alias_list_filters_exports_and_audits(client, scan, django_assert_max_num_queries):
    other = InstitutionFactory(code="CAMS")
    for old, new in [("000100", "000200"), ("000200", "000300"), ("000400", "000500")]:
        MrnAlias.objects.create(institution=scan.institution, old_mrn=old, mrn=new, reason="merged", recorded_by="t")
    MrnAlias.objects.create(institution=other, old_mrn="CAMS1", mrn="CAMS2")
    client.force_login(make_user("viewer", roles=["viewer"], institutions=[scan.institution]))
    url = reverse("lossdetect:alias-list")
    with django_assert_max_num_queries(17):  # no query per row (PostgreSQL adds savepoints around the audit row)
        response = client.get(url)
    assert response.status_code == 200
    values = list(response.context["table"].as_values())
    header = values[0]
    assert [(r[header.index("Old MRN")], r[header.index("Goes by MRN")]) for r in values[1:]] == [
        ("000100", "000200"), ("000200", "000300"), ("000400", "000500")]  # CAMS's alias is not the user's
    assert "Edit in the admin" not in response.content.decode()  # a viewer does not edit
    event = AuditEvent.objects.get(event="mrnalias.view")
    assert (event.institution, event.mrns) == ("PUMCH", ["000100", "000200", "000300", "000400", "000500"])
    assert [row.record.old_mrn for row in client.get(url, {"mrn": "0003"}).context["table"].paginated_rows] == [
        "000200"]
    rows = list(csv.reader(io.StringIO(client.get(url, {"mrn": "0005", "_export": "csv"}).content.decode("utf-8-sig"))))
    assert [r[1:3] for r in rows[1:]] == [["000400", "000500"]]
    assert AuditEvent.objects.get(event="export").mrns == ["000400", "000500"]


def test_scan_now_dates_are_iso_in_chinese_and_default_to_the_latest_scans_window(admin_client, scan):
    type(scan.institution).objects.filter(pk=scan.institution.pk).update(rv_url="csv:/data/rv.csv")
    admin_client.cookies["django_language"] = "zh-hans"
    html = admin_client.get(reverse("lossdetect:scan-list")).content.decode()
    assert f'type="date" name="window_from" value="{scan.window_from:%Y-%m-%d}"' in html, "ISO, not 2024年3月4日"
    assert f'type="date" name="window_to" value="{scan.window_to:%Y-%m-%d}"' in html
