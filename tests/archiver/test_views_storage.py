"""The storage pages: per target, copies by state, the cycle covered, the oldest check, the last drill; the
copies of one target with the bad ones first; filters, exports and access like every table."""
from __future__ import annotations

import csv
import datetime as dt
from zoneinfo import ZoneInfo
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


def test_the_lists_counts_are_kept_for_a_while_say_when_and_are_counted_again_on_request(client, storage, settings):
    inst, array, nas, hidden, user = storage
    settings.PDAS_COUNTS_CACHE_SECONDS = 60
    client.force_login(user)

    def array_row(response):
        return {row.name: row for row in response.context["table"].data}["array-1"]

    first = client.get(reverse("archiver:target-list"))
    assert array_row(first).corrupt == 1
    counted = timezone.localtime(first.context["counted_at"], ZoneInfo(first.wsgi_request.site_time_zone))
    counted = counted.strftime("%Y-%m-%d %H:%M:%S")  # in the site's zone, as every time on a page
    assert f"Counted {counted}." in first.content.decode() and 'href="?refresh=1"' in first.content.decode()
    array.copies.filter(status="corrupt").update(status="verified")  # repaired by the nightly check
    assert array_row(client.get(reverse("archiver:target-list"))).corrupt == 1  # as counted a moment ago
    exported = client.get(reverse("archiver:target-list"), {"_export": "csv"})  # an export counts now
    header, row = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))[:2]
    assert row[header.index("Corrupt")] == "0"
    assert array_row(client.get(reverse("archiver:target-list"), {"refresh": "1"})).corrupt == 0
    assert array_row(client.get(reverse("archiver:target-list"))).corrupt == 0


def test_with_zero_seconds_the_list_counts_on_every_view(client, storage, settings):
    inst, array, nas, hidden, user = storage
    settings.PDAS_COUNTS_CACHE_SECONDS = 0
    client.force_login(user)
    client.get(reverse("archiver:target-list"))
    array.copies.filter(status="corrupt").update(status="verified")
    rows = {row.name: row for row in client.get(reverse("archiver:target-list")).context["table"].data}
    assert rows["array-1"].corrupt == 0
