"""The scan service: categories end to end, the window, the pending-archive table, failures, mail."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from inventory.models import ArchiveCopy
from connectors.tps.base import TpsError
from audit.models import AuditEvent
from lossdetect.models import LossScan, PendingPlan
from lossdetect.services.scan import execute_loss_scan, run_loss_scan
from tests.factories import (
    ArchiveCopyFactory, ArchivedPlanFactory, ArchiveFactory, InstitutionFactory, TpsPatientFactory, TpsPlanFactory,
)
from demo_site.rv import RvPlan, rv_plan, write_csv, write_dicom, write_mosaiq

ZONE = ZoneInfo("Asia/Shanghai")
WEEK = (dt.date(2024, 3, 4), dt.date(2024, 3, 10))
NEXT_WEEK = (dt.date(2024, 3, 11), dt.date(2024, 3, 17))
SIX = ["first_course_lost", "first_course_unarchived", "first_course_archived", "recourse_lost",
       "recourse_unarchived", "recourse_archived"]


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ZONE)


@pytest.fixture
def institution(db, tmp_path):
    return InstitutionFactory(code="PUMCH", rv_url=f"csv:{tmp_path / 'rv.csv'}", notify_emails=["physics@example.org"])


def in_tps(institution, mrn, name, created, *, group="Clinical", trials=("Trial_1",)):
    patient = TpsPatientFactory(institution=institution, mrn=mrn, group=group)
    return TpsPlanFactory(patient=patient, name=name, trial_names=list(trials), created=created)


def archived(institution, mrn, name, created, *, copy_status=ArchiveCopy.Status.VERIFIED):
    archive = ArchiveFactory(institution=institution, mrn=mrn)
    ArchivedPlanFactory(archive=archive, name=name, created=created)
    ArchiveCopyFactory(archive=archive, status=copy_status)
    return archive


def scan(institution, window=WEEK, refresh_tps=False) -> LossScan:
    return run_loss_scan(institution=institution, window_from=window[0], window_to=window[1], trigger="manual",
                         actor="tester", refresh_tps=refresh_tps)


def by_mrn(scan_row) -> dict:
    return {f.mrn: f for f in scan_row.findings.all()}


def rv_path(institution) -> Path:
    return Path(institution.rv_url.removeprefix("csv:"))


def rv_csv(institution, deliveries):
    write_csv(rv_path(institution), deliveries)


def test_six_categories_end_to_end(institution, django_capture_on_commit_callbacks, mailoutbox):
    created = local(2024, 2, 20, 10)
    archive_a = archived(institution, "A1", "LT BREAST", created)
    in_tps(institution, "B1", "PROSTATE", created, group="ToArchive")
    archive_d = archived(institution, "D1", "RT BREAST", created)
    in_tps(institution, "E1", "LUNG", created)
    research = in_tps(institution, "F1", "BRAIN", created, group="Research")
    rv_csv(institution, [
        rv_plan("A1", "LT BREAST", dt.datetime(2024, 3, 4, 9), course=1),
        rv_plan("B1", "PROSTATE", dt.datetime(2024, 3, 5, 9), course=1),
        rv_plan("C1", "LIVER", dt.datetime(2024, 3, 6, 9), course=1),
        rv_plan("D1", "RT BREAST", dt.datetime(2024, 3, 7, 9), course=2),
        rv_plan("E1", "LUNG", dt.datetime(2024, 3, 8, 9)),  # re-course by the gap rule:
        rv_plan("E1", "OLD LUNG", dt.datetime(2023, 6, 1, 9)),  # an earlier course, outside the window
        rv_plan("F1", "BRAIN", dt.datetime(2024, 3, 9, 9), course=3),
    ])
    with django_capture_on_commit_callbacks(execute=True):
        result = scan(institution)
    assert result.status == "done", result.error
    assert {k: result.summary[k] for k in ["total", "pending", *SIX]} == {
        "total": 6, "pending": 2, **{c: 1 for c in SIX}}
    found = by_mrn(result)
    assert {m: f.category for m, f in found.items()} == {
        "A1": "first_course_archived", "B1": "first_course_unarchived", "C1": "first_course_lost",
        "D1": "recourse_archived", "E1": "recourse_unarchived", "F1": "recourse_lost"}
    assert (found["A1"].match, found["A1"].archive_id) == (archive_a.name, archive_a.pk)
    assert found["D1"].match == archive_d.name
    assert found["B1"].match.startswith("Institution_1/Mount_0/Patient_")
    assert (found["F1"].found_in, found["F1"].tps_plan_id) == (f"Research:{research.patient.tps_path}", research.pk)
    assert (found["E1"].course, found["E1"].is_recourse, found["D1"].course) == (None, True, 2)
    assert found["A1"].first_delivery == local(2024, 3, 4, 9)

    assert sorted(PendingPlan.objects.values_list("mrn", "status")) == [("B1", "pending"), ("E1", "pending")]
    event = AuditEvent.objects.filter(event="lossscan.run").get()
    assert event.mrns == ["C1", "F1"] and event.detail["first_course_lost"] == 1
    [mail] = mailoutbox
    assert mail.to == ["physics@example.org"] and "2 lost plan(s)" in mail.subject
    assert "C1" in mail.body and "Research:" in mail.body and f"/loss/scan/{result.pk}/" in mail.body


def test_archived_needs_a_verified_archive_with_a_verified_copy(institution):
    created = local(2024, 2, 20, 10)
    archived(institution, "A1", "P", created, copy_status=ArchiveCopy.Status.UPLOADED)
    failed = archived(institution, "A2", "P", created)
    failed.status = "packed"
    failed.save()
    two_targets = archived(institution, "A3", "P", created, copy_status=ArchiveCopy.Status.CORRUPT)
    ArchiveCopyFactory(archive=two_targets, status=ArchiveCopy.Status.VERIFIED)
    ArchiveCopyFactory(archive=two_targets, status=ArchiveCopy.Status.VERIFIED)
    rv_csv(institution, [rv_plan(m, "P", dt.datetime(2024, 3, 4, 9), course=1) for m in ["A1", "A2", "A3"]])
    assert {f.mrn: f.category for f in scan(institution).findings.all()} == {
        "A1": "first_course_lost", "A2": "first_course_lost", "A3": "first_course_archived"}


def test_window_dates_are_inclusive_in_site_time(institution):
    rv_csv(institution, [
        rv_plan("OUT1", "P", dt.datetime(2024, 3, 3, 23, 59, 59)),
        rv_plan("IN1", "P", dt.datetime(2024, 3, 4, 0, 0)),  # 2024-03-03 16:00 UTC
        rv_plan("IN2", "P", dt.datetime(2024, 3, 10, 23, 59, 59)),
        rv_plan("OUT2", "P", dt.datetime(2024, 3, 11, 0, 0)),
    ])
    assert sorted(by_mrn(scan(institution))) == ["IN1", "IN2"]


def test_pending_plans_are_rechecked_until_archived_or_gone(institution, django_capture_on_commit_callbacks,
                                                             mailoutbox):
    created = local(2024, 2, 20, 10)
    plans = {m: in_tps(institution, m, "PLAN", created) for m in ["TO-ARCHIVE", "STAYS", "DELETED", "MOVED"]}
    rv_csv(institution, [rv_plan(m, "PLAN", dt.datetime(2024, 3, 5, 9), course=c)
                         for m, c in [("TO-ARCHIVE", 1), ("STAYS", 1), ("DELETED", 2), ("MOVED", 1)]])
    first = scan(institution)
    assert first.summary["pending"] == 4 and first.summary["first_course_unarchived"] == 3
    assert PendingPlan.objects.filter(status="pending", first_seen_scan=first).count() == 4

    # Between the scans: one is archived (originals removed), one deleted, one moved to Research.
    archive = archived(institution, "TO-ARCHIVE", "PLAN", created)
    for mrn in ["TO-ARCHIVE", "DELETED"]:
        plans[mrn].patient.present = False
        plans[mrn].patient.save()
    moved = plans["MOVED"].patient
    moved.group, moved.tps_path = "Research", "Institution_9/Mount_0/Patient_99"
    moved.save()

    with django_capture_on_commit_callbacks(execute=True):
        second = scan(institution, window=NEXT_WEEK)  # the first week's plans lie outside this window
    pending = {p.mrn: p for p in PendingPlan.objects.all()}
    assert (pending["TO-ARCHIVE"].status, pending["TO-ARCHIVE"].released_archive) == ("released", archive)
    assert pending["TO-ARCHIVE"].released_at is not None
    assert (pending["STAYS"].status, pending["STAYS"].last_checked_scan, pending["STAYS"].first_seen_scan) == (
        "pending", second, first)
    assert pending["DELETED"].status == pending["MOVED"].status == "lost"
    assert pending["DELETED"].lost_at is not None
    found = by_mrn(second)
    assert sorted(found) == ["DELETED", "MOVED"]
    assert found["DELETED"].category == "recourse_lost" and found["DELETED"].found_in == ""
    assert found["MOVED"].category == "first_course_lost"
    assert found["MOVED"].found_in == "Research:Institution_9/Mount_0/Patient_99"
    assert found["DELETED"].first_delivery == local(2024, 3, 5, 9)
    assert {k: second.summary[k] for k in ["total", "pending", "first_course_lost", "recourse_lost", "released",
                                            "pending_lost", "rechecked"]} == {
        "total": 2, "pending": 1, "first_course_lost": 1, "recourse_lost": 1, "released": 1, "pending_lost": 2,
        "rechecked": 4}
    [mail] = mailoutbox
    assert "DELETED" in mail.body

    third = scan(institution, window=NEXT_WEEK)  # lost and released plans are not reported again
    assert third.summary["total"] == 0 and third.summary["pending"] == 1


def test_scanning_the_same_window_again_updates_the_pending_row(institution):
    in_tps(institution, "M1", "PLAN", local(2024, 2, 20, 10))
    rv_csv(institution, [rv_plan("M1", "PLAN", dt.datetime(2024, 3, 5, 9), course=1)])
    first, second = scan(institution), scan(institution)
    row = PendingPlan.objects.get()
    assert (row.first_seen_scan, row.last_checked_scan) == (first, second)
    assert second.summary["first_course_unarchived"] == 1 and second.summary["rechecked"] == 0


def test_rerun_of_a_scan_after_a_crash_does_not_duplicate(institution):
    in_tps(institution, "M1", "PLAN", local(2024, 2, 20, 10))
    rv_csv(institution, [rv_plan("M1", "PLAN", dt.datetime(2024, 3, 5, 9), course=1),
                         rv_plan("M2", "GONE", dt.datetime(2024, 3, 5, 9), course=1)])
    result = scan(institution)
    result.status = LossScan.Status.RUNNING
    execute_loss_scan(scan=result, refresh_tps=False)
    assert result.findings.count() == 2 and PendingPlan.objects.count() == 1


@pytest.mark.parametrize("content, reason", [
    (None, "R&V source of PUMCH cannot be read: "),
    ("mrn,patient_name,plan_label,course,first_delivery\n", "returned no first-delivery records"),
    ("mrn,patient_name,plan_label,course,first_delivery\n,A,P,1,2024-03-04T09:00\n",
     "returned no first-delivery records (1 rows skipped, first: rv.csv row 2: mrn is empty)"),
    ("mrn,plan_label\n", "header lacks column(s) patient_name, course, first_delivery"),
])
def test_unreadable_or_empty_source_fails_as_unknown(institution, content, reason, django_capture_on_commit_callbacks,
                                                     mailoutbox):
    if content is not None:
        rv_path(institution).write_text(content)
    pending = in_tps(institution, "P1", "PLAN", local(2024, 2, 20, 10))
    with django_capture_on_commit_callbacks(execute=True):
        result = scan(institution)
    assert result.status == "failed"
    assert reason in result.error and "\n" not in result.error
    assert result.summary == {} and result.findings.count() == 0
    assert pending.patient.present
    event = AuditEvent.objects.get(event="lossscan.run")
    assert event.outcome == "failed"
    [mail] = mailoutbox
    assert "FAILED, losses unknown" in mail.subject


def test_skipped_rows_are_kept_with_the_scan(institution, django_capture_on_commit_callbacks, mailoutbox):
    rv_path(institution).write_text(
        "mrn,patient_name,plan_label,course,first_delivery\n1,A,P,1,2024-03-04T09:00\n2,B,Q,x,2024-03-04T09:00\n")
    in_tps(institution, "1", "P", local(2024, 2, 20, 10))
    with django_capture_on_commit_callbacks(execute=True):
        result = scan(institution)
    assert result.status == "done"
    assert result.source_warnings == [{"where": "rv.csv row 3", "reason": "course 'x' is not a whole number"}]
    assert result.summary["source_problems"] == 1
    [mail] = mailoutbox  # nothing lost, but a row could not be checked
    assert "1 R&V row(s) could not be checked" in mail.subject


def test_no_mail_when_nothing_lost_or_nobody_to_tell(institution, django_capture_on_commit_callbacks, mailoutbox):
    in_tps(institution, "1", "P", local(2024, 2, 20, 10))
    rv_csv(institution, [rv_plan("1", "P", dt.datetime(2024, 3, 4, 9))])
    with django_capture_on_commit_callbacks(execute=True):
        scan(institution)
    institution.notify_emails = []
    institution.save()
    rv_csv(institution, [rv_plan("2", "LOST", dt.datetime(2024, 3, 4, 9))])
    with django_capture_on_commit_callbacks(execute=True):
        assert scan(institution).summary["lost"] == 1
    assert mailoutbox == []


def test_tps_is_refreshed_first_and_a_failed_refresh_fails_the_scan(institution, monkeypatch):
    calls = []
    monkeypatch.setattr("inventory.services.tps_sync.sync_institution",
                        lambda *, institution, actor=None, source=None: calls.append((institution.code, actor)))
    rv_csv(institution, [rv_plan("1", "P", dt.datetime(2024, 3, 4, 9))])
    assert scan(institution, refresh_tps=True).status == "done"
    assert calls == [("PUMCH", "tester")]

    def unreachable(**kwargs):
        raise TpsError("ssh://tps-host: connection refused", retryable=True)

    monkeypatch.setattr("inventory.services.tps_sync.sync_institution", unreachable)
    result = scan(institution, refresh_tps=True)
    assert (result.status, result.error) == ("failed", "TPS of PUMCH cannot be read: ssh://tps-host: connection refused")


def _all_three_sources(tmp_path, plans: list[RvPlan]):
    """The same plans as CSV (course column empty), MOSAIQ (courses, QA beams, the plans' edited
    prescriptions) and DICOM; returns their URLs."""
    csv_path = write_csv(tmp_path / "same.csv", [replace(p, course=None) for p in plans])
    db = write_mosaiq(tmp_path / "mosaiq.sqlite3", plans)
    write_dicom(tmp_path / "dicom", plans)
    return [f"csv:{csv_path}", f"mosaiq+sqlite:///{db}", f"dicom-dir:{tmp_path / 'dicom'}"]


def test_same_answers_from_all_three_sources(institution, tmp_path):
    created = local(2024, 2, 20, 10)
    archived(institution, "000001", "LT BREAST", created)
    in_tps(institution, "000002", "Prostate IMRT 78Gy/39F", created, group="ToArchive")
    in_tps(institution, "000003", "PLAN", created, trials=["ＩＭＲＴ 加量"], group="Research")
    in_tps(institution, "000004", "Whole Brain", created)
    plans = [
        rv_plan("000001", "LT BREAST", dt.datetime(2024, 3, 4, 9), course=1, last_name="张", first_name="三",
                qa_runs=[dt.datetime(2024, 2, 27, 16)]),  # a QA beam the week before: not the first delivery
        rv_plan("000002", "PROSTATE IMRT 78", dt.datetime(2024, 3, 5, 9), course=1),
        rv_plan("000003", "IMRT 加量", dt.datetime(2024, 3, 6, 9), course=1),
        rv_plan("000004", "WHOLE BRAIN", dt.datetime(2023, 6, 1, 9), course=1),
        # Prescription edited: in MOSAIQ the first fractions sit on an old Site row of course 1.
        rv_plan("000004", "WHOLE BRAIN", dt.datetime(2024, 3, 7, 9), course=2, old_site_course=1),
        rv_plan("000005", "GONE", dt.datetime(2024, 3, 8, 9), course=1),
    ]
    answers = []
    for url in _all_three_sources(tmp_path, plans):
        institution.rv_url = url
        institution.save()
        result = scan(institution)
        assert result.status == "done", (url, result.error)
        assert result.source_warnings == []
        answers.append(sorted((f.mrn, f.plan_label, f.first_delivery, f.category, f.match, f.found_in)
                              for f in result.findings.all()))
    assert answers[0] == answers[1] == answers[2]
    assert [(a[0], a[3]) for a in answers[0]] == [
        ("000001", "first_course_archived"), ("000002", "first_course_unarchived"), ("000003", "first_course_lost"),
        ("000004", "recourse_unarchived"), ("000005", "first_course_lost")]
    assert answers[0][2][5].startswith("Research:")
