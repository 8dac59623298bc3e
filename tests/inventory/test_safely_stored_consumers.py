"""One definition of "safely stored" (docs/keeping.md), and the pages that show it: an archive verified once
whose only copy is now missing or corrupt is counted as such on the report and raises the home page's
alert for its institution. (The loss scan, curation and the purge have their own tests:
tests/lossdetect/test_scan_unsafe_archives.py, tests/curation/test_services_curate.py,
tests/archiver/test_services_purge.py.)"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from inventory.models import Archive
from reports import selectors
from sites.models import Membership
from tests.factories import ArchiveCopyFactory, ArchiveFactory, InstitutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    """Four archives verified once: safe; safe but stale; one copy corrupt of two; its only copy missing."""
    inst = InstitutionFactory(code="KEEP", min_copies=1, fixity_cycle_days=90)
    safe, stale, half, gone = (ArchiveFactory(institution=inst, mrn=m) for m in ("001", "002", "003", "004"))
    ArchiveCopyFactory(archive=safe)
    ArchiveCopyFactory(archive=stale, last_checked_at=timezone.now() - dt.timedelta(days=100))
    ArchiveCopyFactory(archive=half)
    ArchiveCopyFactory(archive=half, status="corrupt")
    ArchiveCopyFactory(archive=gone, status="missing")
    ArchiveFactory(institution=inst, mrn="005", status=Archive.Status.FAILED)  # never verified: not counted
    return inst


def test_the_queryset_and_the_row_give_the_same_answer(site):
    by_query = set(Archive.objects.filter(institution=site).safely_stored().values_list("mrn", flat=True))
    by_row = {a.mrn for a in Archive.objects.filter(institution=site) if a.is_safely_stored()}
    assert by_query == by_row == {"001", "003"}
    assert set(Archive.objects.without_verified_copy().values_list("mrn", flat=True)) == {"004"}
    assert Archive.objects.filter(institution=site).keeping_counts() == {
        "archives": 4, "safely_stored": 2, "without_verified_copy": 1}


def test_the_counts_agree_with_the_rows_across_institutions_rules_and_targets(site):
    """keeping_counts (one grouped join) against each archive's own answer, with two institutions of
    other rules, a disabled target, an archive without copies and copies of every state and age."""
    from tests.factories import StorageTargetFactory

    strict = InstitutionFactory(code="STRICT", min_copies=2, fixity_cycle_days=30)
    on, also, off = (StorageTargetFactory(institution=strict, enabled=enabled) for enabled in (True, True, False))
    now = timezone.now()
    for n, copies in enumerate([[(on, "verified", 1), (off, "verified", 1)], [(on, "verified", 1), (also, "verified", 29)],
                                [(on, "verified", 1), (also, "verified", 31)], [(on, "corrupt", 1), (also, "verified", 1)],
                                [(off, "verified", 1)], [], [(on, "missing", 1), (also, "unreachable", 1)]]):
        archive = ArchiveFactory(institution=strict, mrn=f"S{n}")
        for target, status, days in copies:
            ArchiveCopyFactory(archive=archive, target=target, status=status,
                               last_checked_at=now - dt.timedelta(days=days))
    for institution in (site, strict, None):
        archives = Archive.objects.all() if institution is None else Archive.objects.filter(institution=institution)
        verified = [a for a in archives if a.status == Archive.Status.VERIFIED]
        assert archives.keeping_counts(now=now) == {
            "archives": len(verified),
            "safely_stored": sum(a.is_safely_stored(now=now) for a in verified),
            "without_verified_copy": archives.without_verified_copy().count()}
    assert Archive.objects.filter(institution=strict).keeping_counts(now=now) == {
        "archives": 7, "safely_stored": 1, "without_verified_copy": 3}


def test_min_copies_counts_verified_copies(site):
    site.min_copies = 2
    site.save()
    assert not Archive.objects.safely_stored().exists()


def test_the_report_shows_what_is_safely_stored_now(site):
    keeping = selectors.keeping_now(institution=site)
    assert (keeping.archives, keeping.safely_stored, keeping.not_safely_stored, keeping.without_verified_copy) == (
        4, 2, 2, 1)


def test_the_home_page_alerts_for_an_archive_with_no_verified_copy(site, client):
    other = InstitutionFactory(code="CALM")
    user = User.objects.create_user("viewer", password="x-not-used-1234")
    for institution in (site, other):
        Membership.objects.create(user=user, institution=institution)
    client.force_login(user)

    response = client.get(reverse("home"))
    cards = {card.institution.code: card for card in response.context["cards"]}
    assert (cards["KEEP"].unsafe_archives, cards["CALM"].unsafe_archives) == (1, 0)
    body = response.content.decode()
    assert body.count("pdas-unsafe-archives") == 1 and "1 archive has no verified copy left" in body


def test_no_archive_may_be_deleted_before_its_retention_or_under_legal_hold(site):
    archive = Archive.objects.filter(institution=site).first()
    now = timezone.now()
    archive.retain_until = now + dt.timedelta(days=1)
    assert archive.may_be_deleted(now=now) == (False, f"retained until {archive.retain_until:%Y-%m-%d}")
    assert archive.may_be_deleted(now=now + dt.timedelta(days=2)) == (True, "")
    archive.legal_hold = True
    assert archive.may_be_deleted(now=now + dt.timedelta(days=2)) == (False, "under legal hold")
    archive.legal_hold, archive.retain_until = False, None
    assert archive.may_be_deleted(now=now) == (False, "no retention date")


def test_the_home_pages_count_is_kept_for_a_while_says_when_and_is_counted_again_on_request(site, client, settings):
    settings.PDAS_COUNTS_CACHE_SECONDS = 60
    user = User.objects.create_user("viewer", password="x-not-used-1234")
    Membership.objects.create(user=user, institution=site)
    client.force_login(user)

    def unsafe(response) -> int:
        return response.context["cards"][0].unsafe_archives

    first = client.get(reverse("home"))
    counted = timezone.localtime(first.context["cards"][0].unsafe_counted_at, ZoneInfo(first.wsgi_request.site_time_zone))
    counted = counted.strftime("%Y-%m-%d %H:%M:%S")  # in the site's zone, as every time on a page
    assert unsafe(first) == 1 and f"Counted {counted}." in first.content.decode()
    Archive.objects.get(mrn="004").copies.update(status="verified")  # put back on its target
    assert unsafe(client.get(reverse("home"))) == 1  # as counted a moment ago
    assert unsafe(client.get(reverse("home"), {"refresh": "1"})) == 0
    assert unsafe(client.get(reverse("home"))) == 0
    settings.PDAS_COUNTS_CACHE_SECONDS = 0
    Archive.objects.get(mrn="004").copies.update(status="missing")
    assert unsafe(client.get(reverse("home"))) == 1
