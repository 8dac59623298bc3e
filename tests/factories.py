"""factory_boy factories for every model, shared by all test modules."""
from __future__ import annotations

import datetime as dt
import hashlib

import factory
from django.utils import timezone

from inventory import models as im
from sites import models as sm
from lossdetect import models as lm


class InstitutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = sm.Institution
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"INST{n}")
    name = factory.LazyAttribute(lambda o: f"Radiation Oncology {o.code}")
    tps_url = "file:///nonexistent/Patients"
    pending_group = "ToArchive"
    clinical_groups = factory.LazyFunction(lambda: ["Clinical"])
    non_clinical_groups = factory.LazyFunction(lambda: ["Research", "Practice", "Training"])
    time_zone = "Asia/Shanghai"


class StorageTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = sm.StorageTarget

    institution = factory.SubFactory(InstitutionFactory)
    name = factory.Sequence(lambda n: f"array-{n}")
    url = "file:///nonexistent/storage"


class TpsPatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = im.TpsPatient

    institution = factory.SubFactory(InstitutionFactory)
    group = "ToArchive"
    tps_patient_id = factory.Sequence(lambda n: 10000 + n)
    tps_path = factory.LazyAttribute(lambda o: f"Institution_1/Mount_0/Patient_{o.tps_patient_id}")
    mrn = factory.Sequence(lambda n: f"{n:06d}")
    last_name = "LAST"
    first_name = "FIRST"
    fingerprint = factory.LazyAttribute(lambda o: hashlib.sha256(o.tps_path.encode()).hexdigest())


class TpsPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = im.TpsPlan

    patient = factory.SubFactory(TpsPatientFactory)
    plan_id = factory.Sequence(lambda n: n)
    name = "PLAN"
    trial_names = factory.LazyFunction(lambda: ["Trial_1"])
    created = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=10))
    edited = factory.LazyAttribute(lambda o: o.created)


class ArchiveFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = im.Archive

    institution = factory.SubFactory(InstitutionFactory)
    mrn = factory.Sequence(lambda n: f"{n:06d}")
    name = factory.LazyAttribute(lambda o: f"LAST-FIRST_{o.mrn}_20240101000000.tar.gz")
    status = im.Archive.Status.VERIFIED
    size = 1000
    raw_bytes = 3000
    checksum = factory.LazyAttribute(lambda o: hashlib.sha256(o.name.encode()).hexdigest())
    packed_at = factory.LazyFunction(timezone.now)
    verified_at = factory.LazyFunction(timezone.now)


class ArchivedPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = im.ArchivedPlan

    archive = factory.SubFactory(ArchiveFactory)
    plan_id = factory.Sequence(lambda n: n)
    name = "PLAN"
    trial_names = factory.LazyFunction(lambda: ["Trial_1"])
    created = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=10))
    edited = factory.LazyAttribute(lambda o: o.created)


class ArchiveCopyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = im.ArchiveCopy

    archive = factory.SubFactory(ArchiveFactory)
    target = factory.SubFactory(StorageTargetFactory, institution=factory.SelfAttribute("..archive.institution"))
    path = factory.LazyAttribute(lambda o: o.archive.name)
    size = factory.LazyAttribute(lambda o: o.archive.size)
    checksum = factory.LazyAttribute(lambda o: o.archive.checksum)
    status = im.ArchiveCopy.Status.VERIFIED
    stored_at = factory.LazyFunction(timezone.now)
    last_checked_at = factory.LazyFunction(timezone.now)


class LossScanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = lm.LossScan

    institution = factory.SubFactory(InstitutionFactory)
    window_from = factory.LazyFunction(lambda: dt.date.today() - dt.timedelta(days=7))
    window_to = factory.LazyFunction(dt.date.today)
    requested_by = "tester"


def make_user(username: str, *, roles=(), permissions=(), institutions=(), **fields):
    """A user with the given roles (sites.roles group names), extra permissions ("app.codename") and
    institution memberships; the user is re-read so Django's permission cache starts empty."""
    from django.contrib.auth.models import Group, Permission, User

    from sites.models import Membership

    user = User.objects.create_user(username, password=fields.pop("password", "not-used-here-123"), **fields)
    user.groups.add(*Group.objects.filter(name__in=roles))
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    for institution in institutions:
        Membership.objects.create(user=user, institution=institution)
    return User.objects.get(pk=user.pk)
