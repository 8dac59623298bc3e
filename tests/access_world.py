"""Two institutions with one row of every PDAS model in ALPHA, and a user per role: the fixture of the
access and audit tests (tests/pdas/test_access.py, tests/audit/)."""
from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from inventory.models import FixityCheck
from audit.events import Event
from audit.services import record_event
from curation.models import Acknowledgement, CurationFinding, CurationRun, NamingRule, TransitionalPattern
from lossdetect.models import LossFinding, LossScan, MrnAlias, OtherTpsRecord, PendingPlan
from sites.roles import ARCHIVE_ADMIN, AUDITOR, PHYSICIST, ROLES, VIEWER
from reports.models import ReconciliationEntry, ReconciliationImport
from tests.factories import (
    ArchiveCopyFactory, ArchivedPlanFactory, ArchiveFactory, InstitutionFactory, LossScanFactory, TpsPatientFactory,
    TpsPlanFactory, make_user,
)
from tests.reports.factories import (
    ArchiveRunFactory, PatientArchiveTaskFactory, QuarantinedPatientFactory, RestoreRecordFactory,
)

MRN = "A00001"  # the patient of ALPHA every row names


@pytest.fixture
def world(db):
    """Two institutions; one row of every model in ALPHA; the users."""
    alpha, beta = InstitutionFactory(code="ALPHA"), InstitutionFactory(code="BETA")
    patient = TpsPatientFactory(institution=alpha, mrn=MRN)
    plan = TpsPlanFactory(patient=patient)
    archive = ArchiveFactory(institution=alpha, mrn=MRN)
    copy = ArchiveCopyFactory(archive=archive)
    run = ArchiveRunFactory(institution=alpha)
    scan = LossScanFactory(institution=alpha, status=LossScan.Status.DONE)
    curation_run = CurationRun.objects.create(institution=alpha, requested_by="t", status=CurationRun.Status.DONE)
    reconciliation = ReconciliationImport.objects.create(
        institution=alpha, source=ReconciliationImport.Source.LISTING, listing_name="l.csv", requested_by="t",
        status=ReconciliationImport.Status.DONE)
    now = timezone.now()
    objects = {
        "institution": alpha, "storagetarget": copy.target, "tpspatient": patient, "tpsplan": plan,
        "archive": archive, "archivedplan": ArchivedPlanFactory(archive=archive), "archivecopy": copy,
        "fixitycheck": FixityCheck.objects.create(copy=copy, method=FixityCheck.Method.LOCAL_HASH),
        "archiverun": run, "patientarchivetask": PatientArchiveTaskFactory(run=run, patient=patient),
        "quarantinedpatient": QuarantinedPatientFactory(institution=alpha, archive=archive),
        "restorerecord": RestoreRecordFactory(institution=alpha, archive=archive),
        "lossscan": scan,
        "lossfinding": LossFinding.objects.create(scan=scan, mrn=MRN, plan_label="P", first_delivery=now,
                                                  category="first_course_lost"),
        "pendingplan": PendingPlan.objects.create(institution=alpha, mrn=MRN, plan_label="P",
                                                  first_delivery=now, first_seen_scan=scan, last_checked_scan=scan),
        "othertpsrecord": OtherTpsRecord.objects.create(scan=scan, mrn=MRN, plan_label="P", first_delivery=now,
                                                        planning_system="Monaco"),
        "mrnalias": MrnAlias.objects.create(institution=alpha, old_mrn="A00000", mrn=MRN),
        "namingrule": NamingRule.objects.create(institution=alpha, applies_to="mrn", regex="^A", message="m"),
        "transitionalpattern": TransitionalPattern.objects.create(institution=alpha, regex="copy", message="m"),
        "curationrun": curation_run,
        "curationfinding": CurationFinding.objects.create(run=curation_run, patient=patient, category="naming",
                                                          mrn=MRN, tps_path=patient.tps_path),
        "acknowledgement": Acknowledgement.objects.create(patient=patient, category="naming", fingerprint="f",
                                                          username="t", note="n"),
        "reconciliationimport": reconciliation,
        "reconciliationentry": ReconciliationEntry.objects.create(reconciliation=reconciliation, mrn=MRN,
                                                                  outcome="matched"),
        "auditevent": record_event(actor="t", event=Event.PATIENT_VIEW, institution="ALPHA", mrns=[MRN]),
    }
    users = {
        "viewer": make_user("viewer", roles=[VIEWER], institutions=[alpha]),
        "physicist": make_user("physicist", roles=[PHYSICIST], institutions=[alpha]),
        "archive_admin": make_user("archive_admin", roles=[ARCHIVE_ADMIN], institutions=[alpha], is_staff=True),
        "auditor": make_user("auditor", roles=[AUDITOR], institutions=[alpha]),
        "other": make_user("other", roles=list(ROLES), institutions=[beta], is_staff=True),
        "superuser": make_user("superuser", is_staff=True, is_superuser=True),
    }
    objects["user"], objects["group"] = users["viewer"], users["viewer"].groups.get()
    return {"alpha": alpha, "beta": beta, "objects": objects, "users": users}


def _clients(world) -> dict[str, Client]:
    clients = {"anonymous": Client()}
    for name, user in world["users"].items():
        clients[name] = Client()
        clients[name].force_login(user)
    return clients


def clients_of(world) -> dict[str, Client]:
    """A logged-in test client per user of the world, and ``anonymous``."""
    clients = {"anonymous": Client()}
    for name, user in world["users"].items():
        clients[name] = Client()
        clients[name].force_login(user)
    return clients
