"""archiver.selectors.archive_runs_with_counts: the page's form (correlated subqueries) and the export's
(one grouped join) give every run the same counts, a run without patients included."""
from __future__ import annotations

import pytest

from archiver.models import ArchiveRun, PatientArchiveTask
from archiver.selectors import archive_runs_with_counts
from tests.factories import ArchiveFactory, InstitutionFactory, TpsPatientFactory

pytestmark = pytest.mark.django_db

FIELDS = ("pk", "patients", "passed", "errors", "warnings", "raw_bytes")


def test_page_and_export_forms_count_the_same():
    inst = InstitutionFactory(code="CNT")
    busy = ArchiveRun.objects.create(institution=inst, requested_by="t")
    empty = ArchiveRun.objects.create(institution=inst, requested_by="t")
    results = ["pass", "pass", "error", "warning", "pass", "error"]
    for n, result in enumerate(results):
        archive = ArchiveFactory(institution=inst, raw_bytes=1000 * (n + 1)) if result == "pass" else None
        PatientArchiveTask.objects.create(run=busy, patient=TpsPatientFactory(institution=inst, mrn=f"C{n}"),
                                          archive=archive, result=result)
    page = list(archive_runs_with_counts().values_list(*FIELDS))
    export = list(archive_runs_with_counts(every_run=True).values_list(*FIELDS))
    assert page == export
    assert dict((row[0], row[1:]) for row in page) == {
        busy.pk: (6, 3, 2, 1, 1000 + 2000 + 5000),
        empty.pk: (0, 0, 0, 0, None),
    }
