"""Report pages: access, the figures shown, audited views and exports, bounded queries; reconciliation pages."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sites.models import Institution
from audit.models import AuditEvent
from sites.roles import ARCHIVE_ADMIN, VIEWER
from reports.models import ReconciliationImport
from reports.services.reconcile import import_listing
from tests.factories import ArchiveFactory, make_user
from tests.reports.factories import ArchiveRunFactory
from tests.reports.site import MARCH_QUERY as MARCH
from tests.reports.site import ZONE, add_day_of_work, at

pytestmark = pytest.mark.django_db


def test_login_and_permission_are_required(client, inst):
    response = client.get(reverse("reports:index"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    client.force_login(make_user("clerk", institutions=[inst]))
    assert client.get(reverse("reports:index")).status_code == 403
    assert AuditEvent.objects.get(event="access.denied").detail["reason"] == "permission"
    client.force_login(make_user("viewer", roles=[VIEWER], institutions=[inst]))
    response = client.get(reverse("reports:index"))
    assert response.status_code == 200 and response.context["report"].institution == inst


def test_a_viewer_sees_only_the_institutions_they_are_a_member_of(client, inst):
    other = Institution.objects.get(code="ZZZ")
    client.force_login(make_user("viewer", roles=[VIEWER], institutions=[other]))
    response = client.get(reverse("reports:index"))
    assert response.context["report"].institution == other  # their first, not the first of all
    assert [i.code for i in response.context["form"].fields["institution"].queryset] == ["ZZZ"]
    assert client.get(reverse("reports:index"), MARCH).status_code == 404  # PUMCH: not theirs
    denied = AuditEvent.objects.get(event="access.denied")
    assert denied.institution == "PUMCH" and denied.detail["reason"] == "other institution"
    assert client.get(reverse("reports:index"), {**MARCH, "_export": "csv"}).status_code == 404


def test_a_user_of_no_institution_is_told_so(client, inst):
    client.force_login(make_user("newcomer", roles=[VIEWER]))
    response = client.get(reverse("reports:index"))
    assert response.status_code == 200 and response.context["report"] is None
    assert "not a member of any institution" in response.content.decode() and not response.context["form_errors"]


def test_report_page_shows_the_figures_and_is_audited(admin_client, inst):
    for day in (4, 5):
        add_day_of_work(inst, day)
    response = admin_client.get(reverse("reports:index"), MARCH)
    assert response.status_code == 200
    html = response.content.decode()
    report = response.context["report"]
    assert report.volume.patients == 2 and report.throughput.mb_per_s == pytest.approx(0.02)
    assert 'data-figure="patients">2<' in html
    assert "0.02 MB/s" in html and "50.00 %" in html and "1.00 GB" in html  # loss rate, quarantine
    assert '<canvas id="chart-volume"' in html and 'id="report-chart-data"' in html
    assert "vendor/chartjs/chart.umd.js" in html
    event = AuditEvent.objects.get(event="report.view")
    assert event.institution == "PUMCH" and event.detail["period"] == "2024-03" and event.mrns == []
    assert event.detail["from"] == "2024-03-01" and event.detail["to"] == "2024-03-31"


def test_default_is_the_current_month_of_the_first_institution(admin_client, inst):
    response = admin_client.get(reverse("reports:index"))
    report = response.context["report"]
    today = dt.datetime.now(ZONE).date()
    assert report.institution == inst and report.period.first_day == today.replace(day=1)


@pytest.mark.parametrize(("query", "error"), [
    ({"month": "13"}, "Month: Select a valid choice. 13 is not one of the available choices."),
    ({"period": "custom", "first_day": "2024-03-10", "last_day": "2024-03-01"},
     "The last day 2024-03-01 is before the first day 2024-03-10."),
    ({"period": "custom", "first_day": "2024-03-10"}, "A custom range needs both a first and a last day."),
    ({"year": "twenty"}, "Year: Enter a whole number."),
])
def test_bad_input_gives_one_line_naming_the_field(admin_client, inst, query, error):
    response = admin_client.get(reverse("reports:index"), {**MARCH, **query})
    assert response.status_code == 200 and response.context["report"] is None
    assert any(line.startswith(error) for line in response.context["form_errors"])
    assert not AuditEvent.objects.filter(event="report.view").exists()


def test_quarter_year_and_custom_periods(admin_client, inst):
    add_day_of_work(inst, 4)
    for query, label, patients in [({"period": "quarter", "quarter": "1"}, "2024 Q1", 1),
                                   ({"period": "year"}, "2024", 1),
                                   ({"period": "custom", "first_day": "2024-03-05", "last_day": "2024-03-31"},
                                    "2024-03-05 – 2024-03-31", 0)]:
        report = admin_client.get(reverse("reports:index"), {**MARCH, **query}).context["report"]
        assert (report.period.label, report.volume.patients) == (label, patients)


@pytest.mark.parametrize("table", ["figures", "months", "runs", "reasons"])
def test_every_table_exports_to_csv_and_xlsx_and_is_audited(admin_client, inst, table):
    add_day_of_work(inst, 4)
    response = admin_client.get(reverse("reports:index"), {**MARCH, "_export": "csv", "table": table})
    assert response.status_code == 200
    assert f"report-PUMCH-2024-03-{table}.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) > 1
    xlsx = admin_client.get(reverse("reports:index"), {**MARCH, "_export": "xlsx", "table": table})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    events = AuditEvent.objects.filter(event="export")
    assert events.count() == 2 and {e.detail["format"] for e in events} == {"csv", "xlsx"}
    assert all(e.institution == "PUMCH" and e.detail["rows"] == len(rows) - 1 for e in events)
    assert not AuditEvent.objects.filter(event="report.view").exists()  # an export is not also a page view


def test_exported_numbers_are_raw(admin_client, inst):
    add_day_of_work(inst, 4)
    figures = admin_client.get(reverse("reports:index"), {**MARCH, "_export": "csv", "table": "figures"})
    rows = {row[1]: row[2:] for row in csv.reader(io.StringIO(figures.content.decode("utf-8-sig")))}
    assert rows["Throughput"] == ["0.02", "MB/s"] and rows["Loss rate (lost / delivered)"] == ["50.0", "%"]
    runs = admin_client.get(reverse("reports:index"), {**MARCH, "_export": "csv", "table": "runs"})
    header, row = list(csv.reader(io.StringIO(runs.content.decode("utf-8-sig"))))
    run = dict(zip(header, row))
    assert (run["MB/s"], run["Minutes"], run["Started"]) == ("0.02", "1.67", "2024-03-04 12:00:00+08:00")
    months = admin_client.get(reverse("reports:index"), {**MARCH, "_export": "csv", "table": "months"})
    first_month = list(csv.reader(io.StringIO(months.content.decode("utf-8-sig"))))[1]
    assert first_month[0] == "2023-04" and first_month[8] == ""  # MB/s unknown (no run), not 0


def test_the_page_draws_the_latest_runs_and_says_where_the_others_are(admin_client, inst):
    for day in range(1, 32):
        for hour in (1, 13):
            ArchiveRunFactory(institution=inst, started_at=at(3, day, hour))
    response = admin_client.get(reverse("reports:index"), MARCH)
    runs = response.context["tables"]["runs"]["rows"]
    assert len(runs) == 31 and runs[-1][1].text == "2024-03-31 13:00"
    assert "31 earlier runs are in the CSV/XLSX export and the printable report" in response.content.decode()
    export = admin_client.get(reverse("reports:index"), {**MARCH, "_export": "csv", "table": "runs"})
    assert len(export.content.decode("utf-8-sig").strip().splitlines()) == 63
    assert len(admin_client.get(reverse("reports:print"), MARCH).context["tables"]["runs"]["rows"]) == 62


def test_unknown_table_is_not_found(admin_client, inst):
    assert admin_client.get(reverse("reports:index"), {**MARCH, "_export": "csv", "table": "x"}).status_code == 404


def test_printable_report(admin_client, inst):
    add_day_of_work(inst, 4)
    response = admin_client.get(reverse("reports:print"), MARCH)
    html = response.content.decode()
    assert response.status_code == 200 and "reports/print.css" in html and "Reviewed by" in html
    assert 'class="pdas-navbar' not in html and '<canvas id="chart-loss"' in html
    assert AuditEvent.objects.get(event="report.view").detail["format"] == "print"


def test_page_query_count_is_bounded_and_independent_of_the_archives(admin_client, inst):
    def queries() -> int:  # counted anew each time (refresh), as the first view of a report is
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(reverse("reports:index"), {**MARCH, "refresh": "1"}).status_code == 200
        return len(captured)

    add_day_of_work(inst, 1)
    few = queries()
    for day in range(2, 29):
        add_day_of_work(inst, day)
    assert queries() == few <= 32, few


@pytest.mark.parametrize("shared", [False, True], ids=["process cache", "redis cache"])
def test_the_page_keeps_a_counted_report_and_counts_again_when_asked(admin_client, inst, settings, request, shared):
    if shared:  # an installation's: the report goes to Redis and back (pdas/caches.py)
        request.getfixturevalue("redis_cache")
    settings.PDAS_REPORT_CACHE_SECONDS = 300
    add_day_of_work(inst, 4)
    first = admin_client.get(reverse("reports:index"), MARCH)
    assert first.context["report"].volume.patients == 1
    counted = first.context["report"].generated_at.astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S")
    html = first.content.decode()
    assert f"Counted {counted}." in html and "refresh=1" in html and "Count again" in html
    add_day_of_work(inst, 5)
    with CaptureQueriesContext(connection) as captured:
        kept = admin_client.get(reverse("reports:index"), MARCH)
    assert kept.context["report"].volume.patients == 1  # the report counted a moment ago
    assert kept.context["report"].generated_at == first.context["report"].generated_at
    # None of the report's aggregates ran again; the table of the latest runs (LIMIT) is read as it is.
    counting = [q["sql"][:120] for q in captured.captured_queries
                if ("COUNT(" in q["sql"] or "SUM(" in q["sql"]) and "LIMIT" not in q["sql"]]
    assert counting == []
    # The export and the printable report are counted for the request; "Count again" recounts the page.
    export = admin_client.get(reverse("reports:index"), {**MARCH, "_export": "csv", "table": "figures"})
    assert "Patients archived,2" in export.content.decode("utf-8-sig").replace("\r", "")
    assert admin_client.get(reverse("reports:print"), MARCH).context["report"].volume.patients == 2
    again = admin_client.get(reverse("reports:index"), {**MARCH, "refresh": "1"})
    assert again.context["report"].volume.patients == 2
    assert admin_client.get(reverse("reports:index"), MARCH).context["report"].volume.patients == 2
    assert AuditEvent.objects.filter(event="report.view").count() == 5  # four page views and the print: kept or not


def test_a_report_is_not_kept_when_the_setting_is_zero(admin_client, inst, settings):
    settings.PDAS_REPORT_CACHE_SECONDS = 0
    add_day_of_work(inst, 4)
    assert admin_client.get(reverse("reports:index"), MARCH).context["report"].volume.patients == 1
    add_day_of_work(inst, 5)
    assert admin_client.get(reverse("reports:index"), MARCH).context["report"].volume.patients == 2


# --- reconciliation --------------------------------------------------------------------------------------------


def test_reconcile_an_uploaded_listing_and_read_it(admin_client, inst):
    ArchiveFactory(institution=inst, name="A_000123_20240101000000.tar.gz", mrn="000123", size=10)
    ArchiveFactory(institution=inst, name="B_000456_20240101000000.tar.gz", mrn="000456", size=10)
    listing = SimpleUploadedFile("old.csv", b"name,size\nA_000123_20240101000000.tar.gz,10\nnotes.txt,3\n")
    response = admin_client.post(reverse("reports:reconcile-start"), {"institution": inst.pk, "listing": listing})
    reconciliation = ReconciliationImport.objects.get()
    assert response.status_code == 302 and response.url == reverse("reports:reconcile-detail", args=[reconciliation.pk])
    page = admin_client.get(response.url)
    html = page.content.decode()
    assert 'data-outcome="only_in_pdas"' in html and "notes.txt" in html
    view = AuditEvent.objects.get(event="reconcile.view")
    assert view.mrns == ["000123", "000456"] and view.institution == "PUMCH"
    only = admin_client.get(response.url, {"outcome": "only_in_pdas", "_export": "csv"})
    rows = list(csv.reader(io.StringIO(only.content.decode("utf-8-sig"))))
    assert len(rows) == 2 and rows[1][0] == "only_in_pdas"
    assert AuditEvent.objects.get(event="export").mrns == ["000456"]
    listing_page = admin_client.get(reverse("reports:reconcile-list")).content.decode()
    assert reverse("reports:reconcile-detail", args=[reconciliation.pk]) in listing_page
    imports = admin_client.get(reverse("reports:reconcile-list"), {"_export": "xlsx"})
    assert imports.status_code == 200 and imports.content[:2] == b"PK"
    assert AuditEvent.objects.filter(event="export").count() == 2


def test_reconcile_form_errors_are_one_line(admin_client, inst):
    response = admin_client.post(reverse("reports:reconcile-start"), {"institution": inst.pk}, follow=True)
    assert "Upload a listing, or choose a storage target to list." in response.content.decode()
    bad = SimpleUploadedFile("old.csv", b"size\n1\n")
    response = admin_client.post(reverse("reports:reconcile-start"), {"institution": inst.pk, "listing": bad},
                                 follow=True)
    assert "old.csv: line 1: the header has no name column" in response.content.decode()
    assert ReconciliationImport.objects.get().status == ReconciliationImport.Status.FAILED


def test_reconcile_needs_its_permissions_and_keeps_to_the_users_institutions(client, inst):
    client.force_login(make_user("clerk", institutions=[inst]))
    assert client.get(reverse("reports:reconcile-list")).status_code == 403
    assert client.post(reverse("reports:reconcile-start"), {"institution": inst.pk}).status_code == 403
    other = Institution.objects.get(code="ZZZ")
    theirs = import_listing(institution=other, data=b"name,size\nx.tar.gz,1\n", listing_name="l.csv", actor="qa")
    client.force_login(make_user("viewer", roles=[VIEWER], institutions=[inst]))
    assert client.get(reverse("reports:reconcile-list")).context["table"].rows.data.data.count() == 0
    assert client.get(reverse("reports:reconcile-detail", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("reports:reconcile-start"), {"institution": inst.pk}).status_code == 403  # viewer
    client.force_login(make_user("admin", roles=[ARCHIVE_ADMIN], institutions=[inst]))
    listing = SimpleUploadedFile("old.csv", b"name,size\nx.tar.gz,1\n")
    response = client.post(reverse("reports:reconcile-start"), {"institution": other.pk, "listing": listing},
                           follow=True)
    assert "Institution: Select a valid choice." in response.content.decode()  # another institution's: refused
    assert ReconciliationImport.objects.count() == 1


def test_a_report_opened_without_a_period_shows_the_latest_month_with_work(admin_client, inst):
    ArchiveRunFactory(institution=inst, started_at=at(3, 5))
    from archiver.models import ArchiveRun
    ArchiveRun.objects.update(created_at=at(3, 5))
    response = admin_client.get(reverse("reports:index"))
    assert response.context["report"].period.start.date() == dt.date(2024, 3, 1), "not an empty current month"
