"""The storage pages: per target, copies by state, the cycle covered, the oldest check, the last drill; the
copies of one target with the bad ones first; filters, exports and access like every table."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from archiver.models import RestoreDrill
from audit.models import AuditEvent
from sites.roles import VIEWER
from tests.factories import ArchiveCopyFactory, ArchiveFactory, InstitutionFactory, StorageTargetFactory, make_user

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)


@pytest.fixture
def storage():
    inst = InstitutionFactory(code="STOR", fixity_cycle_days=90)
    array, nas = StorageTargetFactory(institution=inst, name="array-1"), StorageTargetFactory(institution=inst,
                                                                                              name="nas")
    now = timezone.now()
    for n, (status, age) in enumerate([("verified", 10), ("verified", 100), ("missing", 5), ("corrupt", 1)]):
        archive = ArchiveFactory(institution=inst, mrn=f"S{n}", last_name=f"PATIENT{n}", status="verified")
        ArchiveCopyFactory(archive=archive, target=array, status=status, last_checked_at=now - age * DAY)
        ArchiveCopyFactory(archive=archive, target=nas, status="verified", last_checked_at=now - DAY)
    RestoreDrill.objects.create(institution=inst, target=array, archive=archive, requested_by="scheduler",
                                outcome="fail", reason="SHA-256 differs")
    other = InstitutionFactory(code="ELSE")
    hidden = StorageTargetFactory(institution=other, name="hidden-array")
    ArchiveCopyFactory(archive=ArchiveFactory(institution=other, mrn="X9", status="verified"), target=hidden)
    user = make_user("viewer", roles=[VIEWER], institutions=[inst])
    return inst, array, nas, hidden, user


def test_the_list_counts_copies_by_state_per_target_and_exports_them(client, storage):
    inst, array, nas, hidden, user = storage
    client.force_login(user)
    response = client.get(reverse("archiver:target-list"))
    rows = {row.name: row for row in response.context["table"].data}
    assert set(rows) == {"array-1", "nas"}, "another institution's target is not listed"
    a = rows["array-1"]
    assert (a.copies, a.verified, a.missing, a.corrupt, a.cycle_covered) == (4, 2, 1, 1, 75.0)
    assert a.last_drill.outcome == "fail" and rows["nas"].last_drill is None
    body = response.content.decode()
    assert 'class="table-danger even"' in body and "hidden-array" not in body

    exported = client.get(reverse("archiver:target-list"), {"_export": "csv"})
    table = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert table[0][:3] == ["Institution", "Target", "Copies"] and len(table) == 3


def test_a_targets_page_lists_the_bad_copies_first_and_is_audited(client, storage):
    inst, array, nas, hidden, user = storage
    client.force_login(user)
    response = client.get(reverse("archiver:target-detail", args=[array.pk]))
    statuses = [row.record.status for row in response.context["table"].paginated_rows]
    assert statuses[:2] == ["missing", "corrupt"] or statuses[:2] == ["corrupt", "missing"]
    assert statuses[2:] == ["verified", "verified"]
    assert [row.record.archive.mrn for row in response.context["table"].paginated_rows][2:] == ["S1", "S0"], \
        "then the longest unchecked"
    assert 'id="target-problems"' in response.content.decode()
    event = AuditEvent.objects.filter(event="storage.view").get()
    assert sorted(event.mrns) == ["S0", "S1", "S2", "S3"]

    only_missing = client.get(reverse("archiver:target-detail", args=[array.pk]), {"status": "missing"})
    assert [r.record.archive.mrn for r in only_missing.context["table"].paginated_rows] == ["S2"]
    exported = client.get(reverse("archiver:target-detail", args=[array.pk]), {"status": "corrupt", "_export": "csv"})
    assert "S3" in exported.content.decode("utf-8-sig") and "S2" not in exported.content.decode("utf-8-sig")
    assert AuditEvent.objects.filter(event="export").get().mrns == ["S3"]


def test_another_institutions_target_is_not_found(client, storage):
    inst, array, nas, hidden, user = storage
    client.force_login(user)
    assert client.get(reverse("archiver:target-detail", args=[hidden.pk])).status_code == 404


def test_the_pages_speak_chinese(client, storage):
    inst, array, nas, hidden, user = storage
    client.force_login(user)
    client.cookies["django_language"] = "zh-hans"
    body = client.get(reverse("archiver:target-list")).content.decode()
    assert "存储目标" in body and "已校验" in body
    body = client.get(reverse("archiver:target-detail", args=[array.pk])).content.decode()
    assert "最近一次完整校验" in body
