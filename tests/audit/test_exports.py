"""Every page's CSV and XLSX export (audit.exports.AuditedExportMixin, written by core.exports) keeps text
from outside inert: a patient name, plan name, MRN or file name that a spreadsheet would run as a
formula is an apostrophe-led CSV cell and a text XLSX cell, and a real negative number stays a number."""
from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from archiver.models import PatientArchiveTask
from audit.exports import AuditedExportMixin
from audit.services import record_event
from core.exports import SafeTableExport
from curation.models import CurationFinding
from lossdetect.models import LossFinding, MrnAlias, OtherTpsRecord, PendingPlan
from reports.models import ReconciliationEntry, ReconciliationImport
from tests.access_world import clients_of, world  # noqa: F401 - the fixture
from inventory.models import FixityCheck, PseudonymMap
from tests.factories import ArchiveCopyFactory, ArchiveFactory, StorageTargetFactory, TpsPatientFactory
from tests.reports.factories import ArchiveRunFactory, PatientArchiveTaskFactory

pytestmark = pytest.mark.django_db

# What a hostile Pinnacle file, R&V listing or file name can carry.
NAME = '=HYPERLINK("http://x","y")'  # a patient's last name
PLAN = "+1+1"  # a plan name
MRN = "@SUM(1)"  # an MRN of an R&V listing
FILE = "=cmd|' /C calc'!A0"  # a file name, or a user name that reached a job row
WIDE = "＝1+1"  # a full-width equals sign: a formula to WPS and to Excel in Chinese locales
NEGATIVE = -3  # a real number: stays a number


def _curation(world) -> tuple[str, dict, set[str]]:
    patient = TpsPatientFactory(institution=world["alpha"], mrn=MRN, last_name=NAME)
    CurationFinding.objects.create(run=world["objects"]["curationrun"], patient=patient, category="naming", mrn=MRN,
                                   patient_name=NAME, tps_path=f"Institution_1/Mount_0/{PLAN}", reasons=[WIDE])
    return reverse("curation:index"), {"institution": "ALPHA", "tab": "naming"}, {NAME, MRN, WIDE}


def _loss_scan(world) -> tuple[str, dict, set[str]]:
    scan = world["objects"]["lossscan"]
    LossFinding.objects.create(scan=scan, mrn=MRN, patient_name=NAME, plan_label=PLAN, course=NEGATIVE,
                               first_delivery=timezone.now(), category="first_course_lost", found_in=FILE)
    return reverse("lossdetect:scan-detail", args=[scan.pk]), {"tab": "first_course_lost"}, {NAME, MRN, PLAN, FILE}


def _other_tps(world) -> tuple[str, dict, set[str]]:
    scan = world["objects"]["lossscan"]
    OtherTpsRecord.objects.create(scan=scan, mrn=MRN, patient_name=NAME, plan_label=PLAN, course=NEGATIVE,
                                  first_delivery=timezone.now(), planning_system=WIDE)
    return reverse("lossdetect:scan-detail", args=[scan.pk]), {"tab": "other_tps"}, {NAME, MRN, PLAN, WIDE}


def _aliases(world) -> tuple[str, dict, set[str]]:
    MrnAlias.objects.create(institution=world["alpha"], old_mrn=MRN, mrn=WIDE, reason=FILE, recorded_by=NAME)
    return reverse("lossdetect:alias-list"), {}, {MRN, WIDE, FILE, NAME}


def _pending(world) -> tuple[str, dict, set[str]]:
    PendingPlan.objects.create(institution=world["alpha"], mrn=MRN, patient_name=NAME, plan_label=PLAN,
                               course=NEGATIVE, first_delivery=timezone.now(), tps_path=FILE,
                               first_seen_scan=world["objects"]["lossscan"],
                               last_checked_scan=world["objects"]["lossscan"])
    return reverse("lossdetect:pending-list"), {}, {NAME, MRN, PLAN, FILE}


def _archive_runs(world) -> tuple[str, dict, set[str]]:
    ArchiveRunFactory(institution=world["alpha"], requested_by=FILE)
    return reverse("archiver:run-list"), {}, {FILE}


def _archive_run(world) -> tuple[str, dict, set[str]]:
    run = world["objects"]["archiverun"]
    patient = TpsPatientFactory(institution=world["alpha"], mrn=MRN, last_name=NAME, first_name="",
                                tps_path=f"Institution_1/Mount_0/{PLAN}")
    PatientArchiveTaskFactory(run=run, patient=patient, result=PatientArchiveTask.Result.ERROR, reason=FILE,
                              bytes_done=NEGATIVE)
    return reverse("archiver:run-detail", args=[run.pk]), {}, {NAME, MRN, FILE}


def _audit_log(world) -> tuple[str, dict, set[str]]:
    record_event(actor=FILE, event="patient.view", institution="ALPHA", mrns=[MRN])
    return reverse("audit:log"), {}, {FILE, MRN}


def _report(table: str):
    def plant(world) -> tuple[str, dict, set[str]]:
        run = ArchiveRunFactory(institution=world["alpha"], requested_by=FILE)
        PatientArchiveTaskFactory(run=run, result=PatientArchiveTask.Result.ERROR, reason=NAME)
        hostile = {"runs": {FILE}, "reasons": {NAME, '=HYPERLINK("http'}}[table]  # a reason's head: up to its colon
        return reverse("reports:index"), {"institution": "ALPHA", "table": table}, hostile
    return plant


def _reconciliations(world) -> tuple[str, dict, set[str]]:
    ReconciliationImport.objects.create(
        institution=world["alpha"], source=ReconciliationImport.Source.LISTING, listing_name=FILE, requested_by="t",
        status=ReconciliationImport.Status.FAILED, error=NAME)
    return reverse("reports:reconcile-list"), {}, {FILE, NAME}


def _reconciliation(world) -> tuple[str, dict, set[str]]:
    reconciliation = world["objects"]["reconciliationimport"]
    ReconciliationEntry.objects.create(reconciliation=reconciliation, outcome="only_in_listing", line=2, path=FILE,
                                       mrn=MRN, size=NEGATIVE, sha256="", archive_name=PLAN, detail=NAME)
    return reverse("reports:reconcile-detail", args=[reconciliation.pk]), {}, {FILE, MRN, PLAN, NAME}


def _storage_targets(world) -> tuple[str, dict, set[str]]:
    StorageTargetFactory(institution=world["alpha"], name=FILE)  # a name an administrator typed
    return reverse("archiver:target-list"), {}, {FILE}


def _storage_target(world) -> tuple[str, dict, set[str]]:
    target = world["objects"]["storagetarget"]
    archive = ArchiveFactory(institution=world["alpha"], mrn=MRN, last_name=NAME, first_name="", name=PLAN,
                             status="verified", size=NEGATIVE)
    copy = ArchiveCopyFactory(archive=archive, target=target, status="corrupt")
    FixityCheck.objects.create(copy=copy, method="listed", outcome="fail", reason=FILE)
    return reverse("archiver:target-detail", args=[target.pk]), {"status": "corrupt"}, {NAME, MRN, PLAN, FILE}


def _pseudonym_maps(world) -> tuple[str, dict, set[str]]:
    PseudonymMap.objects.create(institution=world["alpha"], mrn=MRN, pseudonym=PLAN, date_offset_days=NEGATIVE,
                                uid_map={}, created_by=FILE)
    return reverse("audit:pseudonym-maps"), {}, {MRN, PLAN, FILE}


# (page, who downloads it, what plants the hostile rows and names the export and the cells to find)
EXPORT_PAGES = [
    ("curation", "physicist", _curation),
    ("loss scan", "viewer", _loss_scan),
    ("pending archive", "viewer", _pending),
    ("other planning systems", "viewer", _other_tps),
    ("mrn aliases", "viewer", _aliases),
    ("archive runs", "viewer", _archive_runs),
    ("archive run", "viewer", _archive_run),
    ("audit log", "auditor", _audit_log),
    # The report's figures and months tables hold only PDAS's own labels and numbers.
    *[(f"report {table}", "viewer", _report(table)) for table in ("runs", "reasons")],
    ("reconciliations", "viewer", _reconciliations),
    ("reconciliation", "viewer", _reconciliation),
    ("storage targets", "viewer", _storage_targets),
    ("storage target", "viewer", _storage_target),
    ("pseudonym maps", "auditor", _pseudonym_maps),
]
EXPORTING_VIEWS = {"CurationView", "ScanDetailView", "PendingPlanListView", "MrnAliasListView",
                   "ArchiveRunListView",
                   "ArchiveRunDetailView", "AuditLogView", "ReportView", "ReportPrintView", "ReconciliationListView",
                   "ReconciliationDetailView", "TargetListView", "TargetDetailView", "PseudonymMapView"}
# (the views of EXPORT_PAGES; the printable report shares ReportView's)
# Pages whose rows hold a number that may be negative: the planted NEGATIVE must come back as a number.
NEGATIVE_COLUMNS = {"loss scan": "Course", "pending archive": "Course", "other planning systems": "Course",
                    "archive run": "Bytes done", "reconciliation": "Size", "storage target": "Size",
                    "pseudonym maps": "Date offset (days)"}

FORMULA_SIGNS = set("=+-@\t\r＝＋－＠")
NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _download(client, url: str, query: dict, export_format: str):
    response = client.get(url, {**query, "_export": export_format})
    assert response.status_code == 200, response.content[:300]
    return response


def _csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def _column(rows: list[list], header: str) -> list:
    index = list(rows[0]).index(header)
    return [row[index] for row in rows[1:]]


@pytest.mark.parametrize(("page", "role", "plant"), EXPORT_PAGES, ids=[page for page, _, _ in EXPORT_PAGES])
def test_csv_export_prefixes_formula_like_text_with_an_apostrophe(world, page, role, plant):
    url, query, hostile = plant(world)
    rows = _csv_rows(_download(clients_of(world)[role], url, query, "csv"))
    cells = {cell for row in rows for cell in row}
    assert {f"'{text}" for text in hostile} <= cells
    runnable = [cell for cell in cells if cell[:1] in FORMULA_SIGNS and not NUMBER.fullmatch(cell)]
    assert runnable == []
    if page in NEGATIVE_COLUMNS:
        assert str(NEGATIVE) in _column(rows, NEGATIVE_COLUMNS[page])


@pytest.mark.parametrize(("page", "role", "plant"), EXPORT_PAGES, ids=[page for page, _, _ in EXPORT_PAGES])
def test_xlsx_export_stores_formula_like_text_as_text(world, page, role, plant):
    url, query, hostile = plant(world)
    response = _download(clients_of(world)[role], url, query, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert [cell.coordinate for cell in cells if cell.data_type == "f"] == []
    texts = {cell.value: cell for cell in cells if isinstance(cell.value, str)}
    assert hostile <= set(texts)  # the original characters, no apostrophe
    assert all(texts[text].data_type == "s" and texts[text].quotePrefix for text in hostile)
    if page in NEGATIVE_COLUMNS:
        values = [[cell.value for cell in row] for row in sheet.iter_rows()]
        assert NEGATIVE in _column(values, NEGATIVE_COLUMNS[page])


def test_other_export_formats_are_not_offered(world):
    """TSV, ODS, JSON and the rest would bypass both rules: asking for one shows the page instead."""
    _archive_run(world)
    client = clients_of(world)["viewer"]
    response = client.get(reverse("archiver:run-detail", args=[world["objects"]["archiverun"].pk]),
                          {"_export": "tsv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")


def _export_views(resolver=None) -> list[type]:
    """The view class of every URL of the project whose view exports a table."""
    found = []
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            found += _export_views(entry)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if view_class is not None and hasattr(view_class, "export_class"):
                found.append(view_class)
    return found


def test_every_exporting_page_writes_through_the_safe_export_and_is_tested_here():
    views = _export_views()
    assert views and all(issubclass(view.export_class, SafeTableExport) for view in views)
    assert all(issubclass(view, AuditedExportMixin) for view in views)
    assert {view.__name__ for view in views} == EXPORTING_VIEWS  # a new one: add its page to EXPORT_PAGES



@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize(("page", "role", "plant"), EXPORT_PAGES, ids=[page for page, _, _ in EXPORT_PAGES])
def test_export_holds_what_the_librarys_table_values_give(world, monkeypatch, page, role, plant, language):
    """core.table_values reads the cells in place of django-tables2's as_values: every page's file is the
    same, byte for byte, as when the library reads them (choices' labels in the user's language included)."""
    from django_tables2.export import TableExport

    url, query, _ = plant(world)
    if page == "audit log":  # the first download's own export event would be a row of the second
        query = {**query, "event": "patient."}
    client = clients_of(world)[role]
    client.cookies["django_language"] = language
    response = _download(client, url, query, "csv")
    ours = response.content
    assert response["Content-Language"] == language
    monkeypatch.setattr(SafeTableExport, "table_to_dataset", TableExport.table_to_dataset)
    assert _download(client, url, query, "csv").content == ours
