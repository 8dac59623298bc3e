"""The report shows the latest restore drill of each target: red when one failed."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from archiver.models import RestoreDrill
from reports.selectors import drills_now
from tests.factories import ArchiveFactory, StorageTargetFactory
from tests.reports.site import MARCH_QUERY as MARCH

pytestmark = pytest.mark.django_db


def test_the_latest_drill_per_target_counts(admin_client, inst):
    a, b, c = (StorageTargetFactory(institution=inst, name=n) for n in ("a", "b", "c"))
    StorageTargetFactory(institution=inst, name="off", enabled=False)
    archive = ArchiveFactory(institution=inst)
    now = timezone.now()
    for target, outcome, days in ((a, "fail", 40), (a, "pass", 5), (b, "fail", 3)):
        RestoreDrill.objects.create(institution=inst, target=target, archive=archive, requested_by="s",
                                    outcome=outcome, started_at=now - dt.timedelta(days=days))
    drills = drills_now(institution=inst)
    assert (drills.targets, drills.passed, drills.failed, drills.unknown, drills.drilled) == (3, 1, 1, 0, 2)
    assert drills.last_at == now - dt.timedelta(days=3)
    assert c.restore_drills.count() == 0

    body = admin_client.get(reverse("reports:index"), MARCH).content.decode()
    figure = body[body.index('data-figure="drills"'):][:200]
    assert "1 / 3 passed" in figure and "text-danger" in body[body.index("Restore drills") - 200:]
