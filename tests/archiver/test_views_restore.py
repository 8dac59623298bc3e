"""The restore page: search, candidates, a confirmed restore button, progress and result."""
from __future__ import annotations

import pytest
from django.urls import reverse

from archiver.models import RestoreRecord
from inventory.models import ArchiveCopy
from archiver.tables import RestoreCandidateTable
from archiver.services.restore import find_candidates
from audit.models import AuditEvent
from tests.archiver.restore_site import archive_patients, build_site, tree
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    site = build_site(tmp_path)
    site["originals"] = {p: tree(site["root"] / p) for p in (site["zhang"], site["namesake"], site["smith"])}
    site["archives"] = archive_patients(site["inst"], [site["zhang"], site["namesake"], site["smith"]])
    return site


def test_search_lists_every_candidate_with_a_restore_button(admin_client, site):
    response = admin_client.get(reverse("archiver:restore"), {"institution": site["inst"].pk, "mrn": "000123"})
    assert response.status_code == 200
    html = response.content.decode()
    for path in (site["zhang"], site["namesake"]):
        assert site["archives"][path].name in html and path in html
    assert "2 patients" in html and html.count('name="archive"') == 2
    assert 'onsubmit="return confirm(' in html and reverse("archiver:restore-start") in html
    event = AuditEvent.objects.get(event="restore.search")
    assert event.mrns == ["000123"] and event.actor == "admin"


def test_candidate_table_values(site):
    candidates = find_candidates(institution=site["inst"], mrn="000124")
    rows = list(RestoreCandidateTable(candidates).as_values())
    assert rows[0][:4] == ["Packed", "Patient", "MRN", "Pinnacle folder"]
    assert rows[1][1:5] == ["Smith, Ann", "000124", site["smith"], "PLAN A"]
    assert rows[1][6:9] == ["array-1, array-2", "verified", site["archives"][site["smith"]].name]


def test_restore_button_restores_and_the_record_reports_it(admin_client, site):
    archive = site["archives"][site["smith"]]
    response = admin_client.post(reverse("archiver:restore-start"),
                                 {"institution": site["inst"].pk, "archive": archive.name})
    record = RestoreRecord.objects.get()
    assert response.status_code == 302 and response.url == reverse("archiver:restore-detail", args=[record.pk])
    assert tree(site["root"] / site["smith"]) == site["originals"][site["smith"]]
    status = admin_client.get(reverse("archiver:restore-status", args=[record.pk])).json()
    assert status["finished"] and status["status"] == "done" and status["tps_path"] == site["smith"]
    assert status["files"] == len(site["originals"][site["smith"]])
    page = admin_client.get(response.url).content.decode()
    assert archive.name in page and "restore.js" in page
    assert AuditEvent.objects.get(event="restore").actor == "admin"
    listing = admin_client.get(reverse("archiver:restore")).content.decode()
    assert f'href="{reverse("archiver:restore-detail", args=[record.pk])}"' in listing


def test_a_refused_restore_shows_why(admin_client, site):
    (site["root"] / site["smith"]).mkdir(parents=True)
    admin_client.post(reverse("archiver:restore-start"),
                      {"institution": site["inst"].pk, "archive": site["archives"][site["smith"]].name})
    status = admin_client.get(reverse("archiver:restore-status", args=[RestoreRecord.objects.get().pk])).json()
    assert status["status"] == "refused" and "already exists" in status["reason"]


def test_an_archive_only_on_the_targets_is_indexed_then_restored(admin_client, site):
    archive = site["archives"][site["smith"]]
    name = archive.name
    archive.quarantined.all().delete()
    archive.delete()
    html = admin_client.get(reverse("archiver:restore"), {"institution": site["inst"].pk, "name": "smith"}).content
    assert name in html.decode() and b"not indexed" in html
    admin_client.post(reverse("archiver:restore-start"), {"institution": site["inst"].pk, "archive": name})
    assert RestoreRecord.objects.get().status == "done"
    assert ArchiveCopy.objects.get(archive__name=name, target__name="array-1").status == "verified"


def test_viewing_needs_a_login_and_restoring_needs_the_permission(client, site):
    for url in (reverse("archiver:restore"), reverse("archiver:restore-start")):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url
    client.force_login(make_user("viewer", permissions=["archiver.view_restorerecord"], institutions=[site["inst"]]))
    html = client.get(reverse("archiver:restore"), {"institution": site["inst"].pk, "mrn": "000124"}).content
    assert b"disabled" in html  # the button is shown, but not for this user
    response = client.post(reverse("archiver:restore-start"),
                           {"institution": site["inst"].pk, "archive": site["archives"][site["smith"]].name})
    assert response.status_code == 403 and not RestoreRecord.objects.exists()


def test_a_search_without_mrn_or_name_asks_for_one(admin_client, site):
    html = admin_client.get(reverse("archiver:restore"), {"institution": site["inst"].pk}).content.decode()
    assert "Give an MRN or a name." in html and not AuditEvent.objects.filter(event="restore.search").exists()


def test_search_page_queries_do_not_grow_with_candidates(admin_client, site):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for query in ("smith", "i"):  # one candidate (Smith), then two (Smith, Li Si)
        with CaptureQueriesContext(connection) as captured:
            html = admin_client.get(reverse("archiver:restore"), {"institution": site["inst"].pk, "name": query})
        counts[query] = (html.content.decode().count('name="archive"'), len(captured))
    assert counts["smith"][0] == 1 and counts["i"][0] == 2
    # 21 with the one query for archives with no whole copy; on PostgreSQL one more: the audit chain's
    # advisory lock (audit/services.py), which SQLite's write lock makes unnecessary.
    assert counts["smith"][1] == counts["i"][1] <= 21 + (connection.vendor == "postgresql")


def test_the_menu_links_the_restore_page(admin_client, site):
    html = admin_client.get(reverse("archiver:restore")).content.decode()
    assert f'href="{reverse("archiver:restore")}"' in html


def test_with_a_broker_the_restore_is_queued_after_commit(admin_client, site, settings, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # never reached: apply_async is replaced
    queued = []
    monkeypatch.setattr("archiver.tasks.restore_archive_task.apply_async",
                        lambda args, queue=None: queued.append(tuple(args)))
    archive = site["archives"][site["smith"]]
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("archiver:restore-start"), {"institution": site["inst"].pk, "archive": archive.name})
    record = RestoreRecord.objects.get()
    assert queued == [(archive.pk, record.pk)] and record.status == "queued" and record.reason == "queued"


def test_the_task_runs_the_prepared_restore_once(site):
    from archiver.services.restore import create_restore
    from archiver.tasks import restore_archive_task

    archive = site["archives"][site["smith"]]
    record = create_restore(archive=archive, institution=site["inst"], actor="physicist")
    assert restore_archive_task.apply(args=(archive.pk, record.pk)).get() == "done"
    assert tree(site["root"] / site["smith"]) == site["originals"][site["smith"]]
    # A redelivered message finds the restore decided and leaves the TPS alone.
    assert restore_archive_task.apply(args=(archive.pk, record.pk)).get() == "done"
    assert AuditEvent.objects.filter(event="restore").count() == 1
    assert restore_archive_task.apply(args=(archive.pk + 1000, record.pk)).get() == "unknown"


def test_the_page_speaks_chinese(admin_client, site):
    admin_client.cookies["django_language"] = "zh-hans"
    html = admin_client.get(reverse("archiver:restore"), {"institution": site["inst"].pk, "mrn": "000123"}).content
    text = html.decode()
    assert "恢复患者" in text and "2 位患者" in text and "多位患者" in text and "Pinnacle 文件夹" in text


def test_an_archive_whose_every_copy_is_bad_is_shown_as_such_not_as_no_match(admin_client, site):
    smith = site["archives"][site["smith"]]
    ArchiveCopy.objects.filter(archive=smith, target__name="array-1").update(status="corrupt")
    ArchiveCopy.objects.filter(archive=smith, target__name="array-2").update(status="missing")
    html = admin_client.get(reverse("archiver:restore"), {"institution": site["inst"].pk, "mrn": "000124"}
                            ).content.decode()
    assert "No archive matches." not in html and 'id="unrestorable"' in html
    assert f"{smith.name}: no whole copy to restore from (array-1: Corrupt, array-2: Missing)" in html
    assert 'name="archive"' not in html  # nothing to restore from: no button
    event = AuditEvent.objects.filter(event="restore.search").latest("id")
    assert event.mrns == ["000124"] and event.detail["unrestorable"] == 1

    from archiver.services.restore.candidates import choose_candidate
    from archiver.services.restore.errors import RestoreRefused

    with pytest.raises(RestoreRefused, match="can be restored: .*no whole copy to restore from"):
        choose_candidate(find_candidates(institution=site["inst"], mrn="000124"), asked="MRN 000124")


def test_a_search_matching_nothing_says_so(admin_client, site):
    html = admin_client.get(reverse("archiver:restore"), {"institution": site["inst"].pk, "mrn": "999999"}
                            ).content.decode()
    assert "No archive matches." in html and 'id="unrestorable"' not in html
