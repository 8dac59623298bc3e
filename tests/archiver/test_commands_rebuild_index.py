"""``manage.py rebuild_index``: the archive records come back from the targets' sidecars alone."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inventory.models import Archive, ArchiveCopy, FixityCheck
from sites.models import Institution
from audit.models import AuditEvent
from tests.archiver.restore_site import archive_patients, build_site
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db(transaction=True)  # flush (TRUNCATE on PostgreSQL) needs no open transaction


def _snapshot() -> dict[str, dict]:
    """What the index says about each archive, without database ids."""
    return {
        a.name: {
            "mrn": a.mrn, "names": (a.last_name, a.first_name), "group": a.group, "tps_path": a.tps_path,
            "codec": a.codec, "size": a.size, "raw_bytes": a.raw_bytes, "checksum": a.checksum,
            "algorithm": a.checksum_algorithm, "manifest": a.manifest,
            "packed_at": a.packed_at.replace(microsecond=0),  # the manifest keeps whole seconds
            "plans": [(p.plan_id, p.name, p.trial_names, p.created, p.edited) for p in a.plans.order_by("plan_id")],
            "copies": sorted((c.target.name, c.path, c.size) for c in a.copies.all()),
        }
        for a in Archive.objects.prefetch_related("plans", "copies__target")
    }


@pytest.fixture
def lost_database(tmp_path, settings):
    """Archives on two targets, then a database emptied of everything and the site configured again."""
    site = build_site(tmp_path)
    archive_patients(site["inst"], [site["zhang"], site["namesake"], site["smith"]])
    before = _snapshot()
    assert len(before) == 3
    call_command("flush", "--no-input", verbosity=0)
    assert not Archive.objects.exists() and not Institution.objects.exists()
    inst = InstitutionFactory(code="PUMCH", tps_url=f"file://{site['root']}")
    for priority, array in enumerate(site["arrays"]):
        StorageTargetFactory(institution=inst, name=array.name, url=f"file://{array}", priority=priority)
    return {**site, "inst": inst, "before": before}


def _rebuild(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("rebuild_index", "--institution", "PUMCH", "--json", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_an_emptied_database_gets_every_archive_record_back(lost_database):
    code, report = _rebuild()
    assert code == 0, report["problems"]
    assert report["counts"]["created"] == 3 and report["counts"]["copies_added"] == 6
    assert report["targets"] == ["array-1", "array-2"]
    after = _snapshot()
    assert after == lost_database["before"]
    assert set(Archive.objects.values_list("status", flat=True)) == {Archive.Status.PACKED}
    assert set(ArchiveCopy.objects.values_list("status", flat=True)) == {ArchiveCopy.Status.UPLOADED}
    added = AuditEvent.objects.filter(event="archive.index", object_type="Archive")
    assert sorted(e.detail["archive"] for e in added) == sorted(Archive.objects.values_list("name", flat=True))
    run = AuditEvent.objects.get(event="archive.index", object_type="Institution")
    assert sorted(run.mrns) == ["000123", "000124"] and run.outcome == "ok"


def test_it_is_idempotent(lost_database):
    _rebuild()
    first = _snapshot()
    code, report = _rebuild()
    assert code == 0 and report["counts"]["created"] == 0 and report["counts"]["known"] == 6
    assert report["counts"]["copies_added"] == 0
    assert _snapshot() == first and Archive.objects.count() == 3
    assert AuditEvent.objects.filter(event="archive.index", object_type="Archive").count() == 3  # added once


def test_verify_runs_a_fixity_check_on_every_copy(lost_database):
    code, report = _rebuild("--verify")
    assert code == 0 and report["counts"]["verified"] == 6
    assert set(ArchiveCopy.objects.values_list("status", flat=True)) == {ArchiveCopy.Status.VERIFIED}
    assert set(Archive.objects.values_list("status", flat=True)) == {Archive.Status.VERIFIED}
    assert FixityCheck.objects.filter(outcome="pass").count() == 6


def test_a_damaged_copy_fails_its_check_and_is_reported(lost_database):
    name = next(iter(lost_database["before"]))
    damaged = lost_database["arrays"][1] / name
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"!")
    code, report = _rebuild("--verify")
    assert code == 1 and report["counts"]["failed_checks"] == 1
    assert report["problems"] == [f"array-2: {name}: fixity check failed (SHA-256 on target differs from the "
                                  "packed archive)"]
    assert ArchiveCopy.objects.get(archive__name=name, target__name="array-2").status == ArchiveCopy.Status.CORRUPT
    assert Archive.objects.get(name=name).status == Archive.Status.VERIFIED  # array-1's copy is whole


def test_broken_sidecars_are_named_and_the_rest_is_indexed(lost_database):
    names = sorted(lost_database["before"])
    array = lost_database["arrays"][0]
    (array / f"{names[0]}.manifest.json").write_text("{not json")
    (array / f"{names[1]}.sha256").unlink()
    (array / names[2]).unlink()  # the archive itself is gone: its sidecars are orphans
    code, report = _rebuild()
    assert code == 1
    problems = report["problems"]
    assert len(problems) == 3
    assert problems[0].startswith(f"array-1: {names[0]}.manifest.json: not valid JSON")
    assert problems[1] == f"array-1: {names[1]}.sha256: missing"
    assert problems[2] == f"array-1: {names[2]}: the archive file is missing (only its sidecars are there)"
    # array-2 still holds all three: every archive is in the index, with the copies that exist.
    assert Archive.objects.count() == 3 and ArchiveCopy.objects.filter(target__name="array-1").count() == 0


def test_a_target_that_cannot_be_listed_is_unknown_not_empty(lost_database):
    lost_database["inst"].storage_targets.filter(name="array-2").update(url="file:///nonexistent/array")
    code, report = _rebuild()
    assert code == 1 and report["targets"] == ["array-1"]
    assert report["problems"][0].startswith("array-2: file:///nonexistent/array: folder does not exist")


def test_a_record_with_another_digest_is_not_changed(lost_database):
    _rebuild()
    archive = Archive.objects.first()
    Archive.objects.filter(pk=archive.pk).update(checksum="f" * 64)
    code, report = _rebuild()
    assert code == 1 and "another digest" in report["problems"][0]
    assert Archive.objects.get(pk=archive.pk).checksum == "f" * 64


def test_unknown_institution_is_exit_2():
    with pytest.raises(CommandError) as err:
        call_command("rebuild_index", "--institution", "NOPE")
    assert err.value.returncode == 2


def _plant(array, name: str, content: bytes, manifest: dict) -> None:
    """An archive file and self-made sidecars that agree with each other, as anyone who can write to
    the array could leave there."""
    import hashlib

    (array / name).write_bytes(content)
    (array / f"{name}.sha256").write_text(f"{hashlib.sha256(content).hexdigest()} *{name}\n")
    (array / f"{name}.manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("content", ["junk", "other patient"])
def test_a_planted_archive_whose_digest_matches_its_own_sidecar_is_not_verified(lost_database, content):
    """Circular verification: a file is not an archive because its digest equals the sidecar planted with it."""
    real = sorted(lost_database["before"])[0]
    array = lost_database["arrays"][0]
    manifest = json.loads((array / f"{real}.manifest.json").read_text())
    manifest["patient"] = {**manifest["patient"], "mrn": "999999"}
    fake = "WANG-WU_999999_20240101120000.tar.gz"
    # "junk": random bytes; "other patient": a genuine archive whose members are not this manifest's files.
    _plant(array, fake, b"\x1f\x8b not an archive" * 100 if content == "junk" else (array / real).read_bytes(),
           manifest)
    code, report = _rebuild("--verify")
    assert code == 1
    problem = next(p for p in report["problems"] if fake in p)
    assert "fixity check failed" in problem
    archive = Archive.objects.get(name=fake)
    assert archive.status == Archive.Status.FAILED and not archive.is_safely_stored()
    assert ArchiveCopy.objects.get(archive=archive).status == ArchiveCopy.Status.CORRUPT
    assert not Archive.objects.filter(name=fake).safely_stored().exists()
    assert Archive.objects.exclude(name=fake).filter(status=Archive.Status.VERIFIED).count() == 3
