"""Factories for the rows the reports count (runs, results, restores, quarantine, loss scans), on top
of the project's ``tests/factories.py``."""
from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from archiver import models as am
from inventory import models as im
from lossdetect import models as lm
from tests.factories import ArchiveFactory, InstitutionFactory, LossScanFactory, TpsPatientFactory


class ArchiveRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = am.ArchiveRun

    institution = factory.SubFactory(InstitutionFactory)
    requested_by = "scheduler"
    status = am.ArchiveRun.Status.DONE
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyAttribute(lambda o: o.started_at + dt.timedelta(minutes=10))


class PatientArchiveTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = am.PatientArchiveTask

    run = factory.SubFactory(ArchiveRunFactory)
    patient = factory.SubFactory(TpsPatientFactory, institution=factory.SelfAttribute("..run.institution"))
    result = am.PatientArchiveTask.Result.PASS
    step = am.PatientArchiveTask.Step.DONE
    bytes_total = 1_000_000
    bytes_done = factory.LazyAttribute(lambda o: o.bytes_total)


class RestoreRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = am.RestoreRecord

    institution = factory.SubFactory(InstitutionFactory)
    archive = factory.SubFactory(ArchiveFactory, institution=factory.SelfAttribute("..institution"))
    requested_by = "physicist"
    destination = "tps"
    status = am.RestoreRecord.Status.DONE
    started_at = factory.LazyFunction(timezone.now)


class QuarantinedPatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = im.QuarantinedPatient

    institution = factory.SubFactory(InstitutionFactory)
    archive = factory.SubFactory(ArchiveFactory, institution=factory.SelfAttribute("..institution"))
    tps_path = factory.Sequence(lambda n: f"Institution_1/Mount_0/Patient_{n}")
    quarantine_path = factory.LazyAttribute(lambda o: f".pdas-quarantine/{o.tps_path}")
    total_bytes = 1000
    moved_at = factory.LazyFunction(timezone.now)
    purge_after = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=30))


class DoneScanFactory(LossScanFactory):
    status = lm.LossScan.Status.DONE
    finished_at = factory.LazyFunction(timezone.now)


class LossFindingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = lm.LossFinding

    scan = factory.SubFactory(DoneScanFactory)
    mrn = factory.Sequence(lambda n: f"{n:06d}")
    plan_label = "LT BREAST"
    first_delivery = factory.LazyFunction(timezone.now)
    category = lm.Category.FIRST_COURSE_ARCHIVED
    is_recourse = factory.LazyAttribute(lambda o: o.category.startswith("recourse"))


class PendingPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = lm.PendingPlan

    institution = factory.SubFactory(InstitutionFactory)
    mrn = factory.Sequence(lambda n: f"{n:06d}")
    plan_label = "LT BREAST"
    first_delivery = factory.LazyFunction(timezone.now)
    first_seen_scan = factory.SubFactory(DoneScanFactory, institution=factory.SelfAttribute("..institution"))
    last_checked_scan = factory.SelfAttribute("first_seen_scan")
