"""Curation is never stale: an archive run or a restore into the TPS ends with a new curation of its
institution, so the curation page does not list as ready what was archived meanwhile."""
from __future__ import annotations

import pytest

from archiver.services import archiving
from archiver.tasks import restore_archive_task, start_archive_run
from curation.models import CurationFinding, CurationRun
from tests.archiver.test_services_archiving import site  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def _ready(run: CurationRun) -> set[str]:
    return set(CurationFinding.objects.filter(run=run, category="ready").values_list("mrn", flat=True))


def test_an_archive_run_ends_with_a_fresh_curation(site):  # noqa: F811
    before = CurationRun.objects.latest("created_at")
    assert {"000123", "000124"} <= _ready(before)
    run = start_archive_run(archiving.create_archive_run(institution=site["inst"], actor="tester"))
    assert run.finished
    after = CurationRun.objects.latest("created_at")
    assert after.requested_by == f"after archive run {run.pk}" and after.status == "done"
    assert not {"000123", "000124"} & _ready(after), "archived patients are no longer listed ready"

    archiving.finish_run(run=run)  # a second close (a redelivered task) asks for no second curation
    from archiver.tasks import curate_after
    curate_after(site["inst"], f"after archive run {run.pk}", when=True)
    assert CurationRun.objects.filter(requested_by=f"after archive run {run.pk}").count() == 1


def test_a_restore_into_the_tps_ends_with_a_fresh_curation(site):  # noqa: F811
    from archiver.services.restore import create_restore
    from inventory.models import Archive

    start_archive_run(archiving.create_archive_run(institution=site["inst"], actor="tester"))
    archive = Archive.objects.get(mrn="000124")
    record = create_restore(archive=archive, institution=site["inst"], actor="physicist")
    assert restore_archive_task.apply(args=[archive.pk, record.pk]).get() == "done"
    after = CurationRun.objects.latest("created_at")
    assert after.requested_by == f"after restore {record.pk}"
    assert CurationFinding.objects.filter(run=after, mrn="000124", category="restored").exists()
