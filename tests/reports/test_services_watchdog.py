"""The watchdog: alerts that fire on absence, each raised once and cleared when resolved."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import Alert
from archiver.models import ArchiveRun
from inventory.models import FixityCheck
from lossdetect.models import LossScan
from reports.services.watchdog import watch
from tests.factories import (ArchiveCopyFactory, ArchiveFactory, InstitutionFactory, LossScanFactory,
                             StorageTargetFactory)

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


def _standing(inst) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for kind, subject in Alert.objects.standing().filter(institution=inst).values_list("kind", "subject"):
        found.setdefault(kind, set()).add(subject)
    return found


def _institution(code, *, days_old=100, **fields):
    inst = InstitutionFactory(code=code, **fields)
    type(inst).objects.filter(pk=inst.pk).update(created_at=timezone.now() - days_old * DAY)
    inst.refresh_from_db()
    return inst


def test_no_archive_run_and_no_loss_scan_raise_alerts_and_a_finished_one_clears_them(settings):
    settings.PDAS_ALERT_ARCHIVE_RUN_DAYS, settings.PDAS_ALERT_LOSS_SCAN_DAYS = 35, 8
    inst = _institution("WD1", rv_url="csv:/nonexistent.csv")
    quiet = _institution("WD2")  # no R&V source: no loss-scan alert
    now = timezone.now()
    ArchiveRun.objects.create(institution=inst, requested_by="t", status=ArchiveRun.Status.DONE,
                              finished_at=now - 40 * DAY)
    ArchiveRun.objects.create(institution=inst, requested_by="t", status=ArchiveRun.Status.FAILED,
                              finished_at=now - DAY)  # a failed run is no run
    LossScanFactory(institution=inst, status=LossScan.Status.DONE, finished_at=now - 9 * DAY)
    LossScanFactory(institution=inst, status=LossScan.Status.FAILED, finished_at=now - DAY)

    watch(actor="t", now=now)
    assert _standing(inst) == {"no_archive_run": {""}, "no_loss_scan": {""}}
    assert _standing(quiet) == {"no_archive_run": {""}}
    alert = Alert.objects.get(institution=inst, kind="no_loss_scan")
    assert alert.detail["days"] == 9 and "No loss scan has succeeded for 9 days" in alert.message()

    LossScanFactory(institution=inst, status=LossScan.Status.DONE, finished_at=now)
    ArchiveRun.objects.create(institution=inst, requested_by="t", status=ArchiveRun.Status.DONE, finished_at=now)
    watch(actor="t", now=now + dt.timedelta(minutes=1))
    assert _standing(inst) == {}


def test_a_new_institution_is_given_its_days_before_the_absence_alerts(settings):
    inst = _institution("WD3", days_old=2, rv_url="csv:/nonexistent.csv")
    watch(actor="t")
    assert _standing(inst) == {}


def _verified_copy(inst, target, *, checked_days_ago):
    now = timezone.now()
    archive = ArchiveFactory(institution=inst, status="verified", verified_at=now - 400 * DAY)
    return ArchiveCopyFactory(archive=archive, target=target, last_checked_at=now - checked_days_ago * DAY)


def test_checks_behind_their_cycle_raise_an_alert_until_caught_up(settings):
    settings.PDAS_ALERT_FIXITY_GRACE_DAYS = 2
    inst = _institution("WD4", fixity_cycle_days=30)
    ArchiveRun.objects.create(institution=inst, requested_by="t", status="done", finished_at=timezone.now())
    target = StorageTargetFactory(institution=inst, name="array-1")
    _verified_copy(inst, target, checked_days_ago=31)  # within the grace
    late = _verified_copy(inst, target, checked_days_ago=40)
    watch(actor="t")
    alert = Alert.objects.standing().get(institution=inst)
    assert (alert.kind, alert.detail["copies"], alert.detail["cycle_days"]) == ("fixity_behind", 1, 30)

    type(late).objects.filter(pk=late.pk).update(last_checked_at=timezone.now())
    watch(actor="t")
    assert _standing(inst) == {}


def test_a_target_that_answers_no_check_for_days_is_alerted_and_cleared_when_it_answers(settings):
    settings.PDAS_ALERT_TARGET_UNREACHABLE_DAYS = 3
    inst = _institution("WD5")
    ArchiveRun.objects.create(institution=inst, requested_by="t", status="done", finished_at=timezone.now())
    down, fine = (StorageTargetFactory(institution=inst, name=n) for n in ("down", "fine"))
    now = timezone.now()
    down_copy = _verified_copy(inst, down, checked_days_ago=1)
    fine_copy = _verified_copy(inst, fine, checked_days_ago=1)
    unknown, passed = FixityCheck.Outcome.UNKNOWN, FixityCheck.Outcome.PASS
    for days, outcome in ((6, passed), (5, unknown), (4, unknown), (1, unknown)):
        FixityCheck.objects.create(copy=down_copy, checked_at=now - days * DAY, method="listed", outcome=outcome)
    FixityCheck.objects.create(copy=fine_copy, checked_at=now - 5 * DAY, method="listed", outcome=unknown)
    FixityCheck.objects.create(copy=fine_copy, checked_at=now - 1 * DAY, method="listed", outcome=passed)

    watch(actor="t", now=now)
    assert _standing(inst) == {"target_unreachable": {"down"}}
    alert = Alert.objects.standing().get(institution=inst)
    assert alert.detail["days"] == 6, "counted from its last answer"

    watch(actor="t", now=now)  # still down: the same alert
    assert Alert.objects.filter(institution=inst).count() == 1

    FixityCheck.objects.create(copy=down_copy, checked_at=now, method="listed", outcome=passed)
    watch(actor="t", now=now + dt.timedelta(minutes=1))
    assert _standing(inst) == {}


def test_an_unreachable_target_is_not_alerted_before_its_days(settings):
    settings.PDAS_ALERT_TARGET_UNREACHABLE_DAYS = 3
    inst = _institution("WD6")
    ArchiveRun.objects.create(institution=inst, requested_by="t", status="done", finished_at=timezone.now())
    copy = _verified_copy(inst, StorageTargetFactory(institution=inst, name="flaky"), checked_days_ago=1)
    FixityCheck.objects.create(copy=copy, checked_at=timezone.now() - 2 * DAY, method="listed",
                               outcome=FixityCheck.Outcome.UNKNOWN)
    watch(actor="t")
    assert _standing(inst) == {}


def test_one_institution_that_cannot_be_watched_does_not_stop_the_others(settings, monkeypatch):
    broken, fine = _institution("WD7"), _institution("WD8")
    from reports.services import watchdog

    def explode(*, institution, now):
        if institution.code == "WD7":
            raise RuntimeError("boom")
        return {}

    monkeypatch.setitem(watchdog.CHECKS, Alert.Kind.FIXITY_BEHIND, explode)
    report = watch(actor="t")
    assert "no_archive_run" in report.standing["WD8"] and _standing(fine) == {"no_archive_run": {""}}
    assert broken.code in report.standing
