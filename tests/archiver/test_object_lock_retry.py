"""A legal hold placed while the S3 Object Lock store cannot be reached is not lost: the copy stays
``lock_pending``, the hourly watchdog tries again (audited ``archive.lock_mirror``) and the store holds the
hold once it answers. The store is moto over HTTPS; "unreachable" is the target pointed at a closed port."""
from __future__ import annotations

import pytest

from audit.models import AuditEvent
from connectors.storage import ObjectLock
from inventory.models import ArchiveCopy
from inventory.services.legal_hold import set_legal_hold
from reports.services.watchdog import watch
from sites.connections import open_target
from tests.archiver.restore_site import archive_patients, build_site
from tests.factories import StorageTargetFactory
from tests.servers.ports import free_port

pytestmark = [pytest.mark.servers, pytest.mark.django_db]


def test_a_legal_hold_the_store_missed_is_mirrored_by_the_watchdog_once_it_answers(
        tmp_path, settings, monkeypatch, s3_server, django_capture_on_commit_callbacks):
    settings.DATA_DIR = tmp_path / "data"
    site = build_site(tmp_path, targets=())
    monkeypatch.setenv("PDAS_TEST_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("PDAS_TEST_S3_SECRET_KEY", s3_server.secret_key)
    url = s3_server.url(s3_server.new_bucket(object_lock=True))
    target = StorageTargetFactory(institution=site["inst"], name="objects", url=url, ca_file=s3_server.ca_file,
                                  access_key_env="PDAS_TEST_S3_ACCESS_KEY", secret_key_env="PDAS_TEST_S3_SECRET_KEY")
    archive = archive_patients(site["inst"], [site["smith"]])[site["smith"]]
    names = (archive.name, f"{archive.name}.sha256", f"{archive.name}.manifest.json")
    copy = ArchiveCopy.objects.get(archive=archive)
    assert not copy.lock_pending

    target.url = url.replace(s3_server.endpoint, f"https://127.0.0.1:{free_port()}")  # nothing answers there
    target.save()
    with django_capture_on_commit_callbacks(execute=True):
        set_legal_hold(archives=[archive], hold=True, reason="court order 17/2026", actor="dpo")
    copy.refresh_from_db()
    assert copy.lock_pending
    report = watch(actor="scheduler")
    copy.refresh_from_db()
    assert copy.lock_pending and report.locks_pending == 1
    tried = AuditEvent.objects.filter(event="archive.lock_mirror").latest("id")
    assert tried.outcome == "failed" and tried.mrns == [archive.mrn], tried.detail
    assert tried.detail["still_pending"] == 1 and tried.detail["archives"] == [archive.name]

    target.url = url  # the store answers again
    target.save()
    with open_target(target) as backend:
        assert not backend.lock_of(archive.name).legal_hold  # what the store held meanwhile
    report = watch(actor="scheduler")
    copy.refresh_from_db()
    assert not copy.lock_pending and report.locks_pending == 0
    archive.refresh_from_db()
    with open_target(target) as backend:
        for name in names:
            assert backend.lock_of(name) == ObjectLock(retain_until=archive.retain_until, legal_hold=True), name
    done = AuditEvent.objects.filter(event="archive.lock_mirror").latest("id")
    assert done.outcome == "ok" and done.detail["done"] == 1, done.detail

    watch(actor="scheduler")  # nothing pending: nothing tried, nothing audited
    assert AuditEvent.objects.filter(event="archive.lock_mirror").count() == 2
