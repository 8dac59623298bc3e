"""The legal hold: placed and released in the admin with a reason, by holders of the permission only, audited."""
from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from audit.models import AuditEvent
from inventory.models import Archive
from sites.roles import ARCHIVE_ADMIN, VIEWER
from tests.factories import ArchiveFactory, InstitutionFactory, make_user

pytestmark = pytest.mark.django_db
URL = reverse("admin:inventory_archive_changelist")


@pytest.fixture
def archives():
    inst = InstitutionFactory(code="HOLD")
    return inst, [ArchiveFactory(institution=inst, mrn=f"H{n}") for n in (1, 2)]


def _post(client, archives, action, **extra):
    return client.post(URL, {"action": action, ACTION_CHECKBOX_NAME: [a.pk for a in archives], "index": 0, **extra})


def test_an_archive_admin_places_and_releases_a_hold_with_a_reason(client, archives):
    inst, rows = archives
    client.force_login(make_user("admin1", roles=[ARCHIVE_ADMIN], institutions=[inst], is_staff=True))

    page = _post(client, rows, "place_legal_hold")
    assert page.status_code == 200 and "H1" in page.content.decode() and 'name="reason"' in page.content.decode()
    assert not Archive.objects.filter(legal_hold=True).exists(), "nothing changes before the reason is given"

    empty = _post(client, rows, "place_legal_hold", apply="1", reason="   ")
    assert empty.status_code == 200 and not Archive.objects.filter(legal_hold=True).exists()

    done = _post(client, rows, "place_legal_hold", apply="1", reason="Court order 2026-117")
    assert done.status_code == 302
    assert set(Archive.objects.filter(legal_hold=True).values_list("mrn", flat=True)) == {"H1", "H2"}
    events = AuditEvent.objects.filter(event="archive.legal_hold")
    assert sorted(e.mrns[0] for e in events) == ["H1", "H2"]
    assert {e.detail["reason"] for e in events} == {"Court order 2026-117"} and all(e.detail["hold"] for e in events)
    assert not Archive.objects.get(mrn="H1").may_be_deleted()[0]

    _post(client, rows[:1], "release_legal_hold", apply="1", reason="Order lifted")
    assert list(Archive.objects.filter(legal_hold=True).values_list("mrn", flat=True)) == ["H2"]
    assert AuditEvent.objects.filter(event="archive.legal_hold").count() == 3


def test_a_user_without_the_permission_cannot_place_a_hold(client, archives):
    inst, rows = archives
    client.force_login(make_user("viewer1", roles=[VIEWER], institutions=[inst], is_staff=True))
    changelist = client.get(URL).content.decode()
    assert "place_legal_hold" not in changelist
    _post(client, rows, "place_legal_hold", apply="1", reason="trying")
    assert not Archive.objects.filter(legal_hold=True).exists()
    assert not AuditEvent.objects.filter(event="archive.legal_hold").exists()
