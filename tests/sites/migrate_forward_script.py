"""Run by tests/sites/test_migrate_forward.py in a subprocess against a database of its own.

1. Migrates an empty database to the schema of the release before the apps were split (institutions,
   targets, the TPS inventory and the archive index all in ``archiver``; memberships in ``pdas``);
2. writes rows with that release's (historical) models, and gives the viewer role the old permissions;
3. migrates forward, then prints what the current models read back, as JSON.
"""
import json
import os
import sys

import django

sys.path.insert(0, os.environ["PDAS_REPO"])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pdas.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.db.migrations.executor import MigrationExecutor  # noqa: E402

PREVIOUS_RELEASE = [
    ("archiver", "0003_institution_worker_queue"), ("pdas", "0002_roles"), ("curation", "0001_initial"),
    ("lossdetect", "0001_initial"), ("reports", "0001_initial"), ("audit", "0002_append_only_trigger"),
    ("sessions", "0001_initial"), ("admin", "0003_logentry_add_action_flag_choices"),
]

executor = MigrationExecutor(connection)
executor.migrate(PREVIOUS_RELEASE)
old = executor.loader.project_state(PREVIOUS_RELEASE).apps

Institution = old.get_model("archiver", "Institution")
inst = Institution.objects.create(code="OLD", name="Old site", tps_url="file:///data/Patients", pending_group="ToArchive")
target = old.get_model("archiver", "StorageTarget").objects.create(institution=inst, name="array-1", url="file:///arch")
patient = old.get_model("archiver", "TpsPatient").objects.create(institution=inst, group="ToArchive",
                                                                 tps_path="Institution_1/Mount_0/Patient_7", mrn="000123")
old.get_model("archiver", "TpsPlan").objects.create(patient=patient, plan_id=0, name="LT BREAST")
archive = old.get_model("archiver", "Archive").objects.create(institution=inst, patient=patient, name="A_000123_1.tar.gz",
                                                              mrn="000123", status="verified")
old.get_model("archiver", "ArchivedPlan").objects.create(archive=archive, plan_id=0, name="LT BREAST")
copy = old.get_model("archiver", "ArchiveCopy").objects.create(archive=archive, target=target, path="A_000123_1.tar.gz",
                                                               status="verified")
old.get_model("archiver", "FixityCheck").objects.create(copy=copy, method="local_hash", outcome="pass")
run = old.get_model("archiver", "ArchiveRun").objects.create(institution=inst, started_by="alice")
old.get_model("archiver", "PatientArchiveTask").objects.create(run=run, patient=patient, archive=archive, result="pass")
# Job rows of that release (they became core.jobs.JobRow rows since).
WHEN = "2024-03-04T05:06:07+00:00"
old.get_model("archiver", "RestoreRecord").objects.create(institution=inst, archive=archive, requested_by="carol",
                                                          destination="tps:Restored", status="refused",
                                                          reason="already in the TPS", started_at=WHEN)
old.get_model("curation", "CurationRun").objects.create(institution=inst, started_by="bob", status="done",
                                                        started_at=WHEN)
old.get_model("lossdetect", "LossScan").objects.create(institution=inst, window_from="2024-02-26",
                                                       window_to="2024-03-03", requested_by="scheduler",
                                                       status="done", started_at=WHEN)
old.get_model("reports", "ReconciliationImport").objects.create(institution=inst, source="listing", listing_name="l.csv",
                                                                imported_by="qa", imported_at=WHEN, status="done")
User = old.get_model("auth", "User")
user = User.objects.create(username="viewer1")
old.get_model("pdas", "Membership").objects.create(user=user, institution=inst)

# The old release's roles held archiver permissions on these models; hand one to a group the old way.
Permission = old.get_model("auth", "Permission")
Group = old.get_model("auth", "Group")
group, _ = Group.objects.get_or_create(name="old-readers")
group.permissions.add(Permission.objects.get(content_type__app_label="archiver", codename="view_institution"))
group.permissions.add(Permission.objects.get(content_type__app_label="archiver", codename="view_archive"))
user.groups.add(group)

executor = MigrationExecutor(connection)
executor.migrate(executor.loader.graph.leaf_nodes())

from django.contrib.auth.models import User as CurrentUser  # noqa: E402

from archiver.models import ArchiveRun, PatientArchiveTask, RestoreRecord  # noqa: E402
from curation.models import CurationRun  # noqa: E402
from lossdetect.models import LossScan  # noqa: E402
from reports.models import ReconciliationImport  # noqa: E402
from inventory.models import Archive, ArchiveCopy, FixityCheck, TpsPatient  # noqa: E402
from sites.models import Membership  # noqa: E402

viewer = CurrentUser.objects.get(username="viewer1")
print(json.dumps({
    "institution": Membership.objects.get(user=viewer).institution.code,
    "targets": list(Archive.objects.get().institution.storage_targets.values_list("name", flat=True)),
    "patient_plans": list(TpsPatient.objects.get().plans.values_list("name", flat=True)),
    "archive_plans": list(Archive.objects.get().plans.values_list("name", flat=True)),
    "copy": [ArchiveCopy.objects.get().target.name, ArchiveCopy.objects.get().status],
    "fixity": FixityCheck.objects.get().copy.archive.name,
    "task": [PatientArchiveTask.objects.get().archive.name, ArchiveRun.objects.get().requested_by],
    "jobs": [[type(job).__name__, job.requested_by, job.status, job.created_at.isoformat(), job.error]
             for job in (RestoreRecord.objects.get(), CurationRun.objects.get(), LossScan.objects.get(),
                         ReconciliationImport.objects.get())],
    "perms": sorted(p for p in viewer.get_all_permissions() if p.endswith(("view_institution", "view_archive"))),
    "pending": len(MigrationExecutor(connection).migration_plan(executor.loader.graph.leaf_nodes())),
}))
