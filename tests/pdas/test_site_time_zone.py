"""Pages show times in the site's zone, labelled; the CLI, pages and exports agree."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from archiver.models import ArchiveRun
from sites.roles import VIEWER
from tests.factories import InstitutionFactory, make_user

pytestmark = pytest.mark.django_db
STARTED = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone.utc)  # 07:30 on 2 March in Shanghai


@pytest.fixture
def shanghai_user(settings):
    settings.TIME_ZONE = "UTC"  # the server's; the institution's zone must win
    inst = InstitutionFactory(code="SH", time_zone="Asia/Shanghai")
    run = ArchiveRun.objects.create(institution=inst, requested_by="physicist", status="done")
    ArchiveRun.objects.filter(pk=run.pk).update(created_at=STARTED)
    return make_user("sh-viewer", roles=[VIEWER], institutions=[inst])


def test_pages_show_the_institutions_zone_and_name_it(client, shanghai_user):
    client.force_login(shanghai_user)
    body = client.get(reverse("archiver:run-list")).content.decode()
    assert "2026-03-02 07:30" in body and "2026-03-01 23:30" not in body
    assert "Times: Asia/Shanghai (UTC+08:00)" in body


def test_exports_carry_the_same_time_with_its_offset(client, shanghai_user):
    client.force_login(shanghai_user)
    response = client.get(reverse("archiver:run-list"), {"_export": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0]["Started"] == "2026-03-02 07:30:00+08:00"


def test_users_of_institutions_in_several_zones_get_the_servers_zone(client, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    user = make_user("two-zones", roles=[VIEWER], institutions=[
        InstitutionFactory(code="SH2", time_zone="Asia/Shanghai"), InstitutionFactory(code="NY", time_zone="America/New_York")])
    client.force_login(user)
    assert "Times: Europe/Berlin" in client.get(reverse("home")).content.decode()
