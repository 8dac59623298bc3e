"""Archiving a TPS reached over SSH (packed on its host by the pack script) to an FTPS array."""
from __future__ import annotations

import io
import tarfile

import pytest

from inventory.models import QuarantinedPatient
from archiver.services import archiving
from archiver.tasks import start_archive_run
from inventory.services.tps_sync import sync_institution
from curation.services.curate import run_curation
from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = [pytest.mark.servers, pytest.mark.django_db]


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_ssh_tps_to_ftps_array(tmp_path, sshd, ftp_server, monkeypatch):
    local = tmp_path / "Patients"
    records = [write_patient(local, patient_id=n, mrn=f"00{n}", last_name="张", first_name=f"{n}号",
                             plans=[PlanSpec(0, "PLAN")], encoding="gb18030") for n in (1, 2)]
    write_institution_file(local, [GroupSpec(1, "ToArchive", records)], form="bare")
    paths = [r.tps_path for r in records]
    remote_root = sshd.put_tree(local, f"tps-{tmp_path.name}")
    originals = {p: _files(remote_root / p) for p in paths}
    monkeypatch.setenv("PDAS_TEST_TPS_PASSWORD", sshd.password)
    monkeypatch.setenv("PDAS_TEST_FTPS_PASSWORD", ftp_server.password)
    inst = InstitutionFactory(code="REMOTE", tps_url=sshd.url(remote_root), tps_password_env="PDAS_TEST_TPS_PASSWORD",
                              tps_known_hosts=sshd.known_hosts)
    folder = ftp_server.new_dir("array")
    StorageTargetFactory(institution=inst, name="ftps", url=ftp_server.url(folder),
                         password_env="PDAS_TEST_FTPS_PASSWORD", ca_file=ftp_server.ca_file)
    sync_institution(institution=inst, actor="test")
    run_curation(institution=inst, actor="test", refresh_tps=False)  # the archiver takes what curation allows

    run = start_archive_run(archiving.create_archive_run(institution=inst, actor="test"))
    results = {t.patient.tps_path: (t.result, t.reason, t.archive) for t in run.tasks.select_related("patient", "archive")}
    assert {r for r, _, _ in results.values()} == {"pass"}, results

    for path, (_, _, archive) in results.items():
        stored = ftp_server.root / folder.lstrip("/") / archive.name
        with tarfile.open(fileobj=io.BytesIO(stored.read_bytes()), mode="r:gz") as tar:
            names = tar.getnames()
            assert names[:2] == ["Institution", "PDAS-MANIFEST.json"]
            extracted = {m.name.removeprefix(path + "/"): tar.extractfile(m).read()
                         for m in tar.getmembers() if m.isfile() and m.name.startswith(path + "/")}
        assert extracted == originals[path]
        assert not (remote_root / path).exists()
        quarantined = remote_root / QuarantinedPatient.objects.get(tps_path=path).quarantine_path
        assert _files(quarantined) == originals[path]
    assert not list((remote_root / ".pdas-work").glob("*.tar.gz")), "packed files on the TPS host are cleaned up"


def test_planted_file_names_run_nothing_on_the_tps_host(tmp_path, sshd, monkeypatch):
    """Names an attacker plants in patient folders on an SSH TPS: tar options, a folder with a trailing
    space in front of a host path, a line break. Nothing runs, nothing of the host is archived, and the
    patient with the unparseable name fails alone with the reason."""
    local = tmp_path / "Patients"
    records = [write_patient(local, patient_id=n, mrn=f"00{n}", plans=[PlanSpec(0, "PLAN")]) for n in (1, 2)]
    write_institution_file(local, [GroupSpec(1, "ToArchive", records)], form="bare")
    hostile, broken = (local / r.tps_path for r in records)
    (hostile / "x --checkpoint=1 --checkpoint-action=exec=id>pwned").write_bytes(b"")
    (hostile / "y").write_bytes(b"")
    (hostile / "y " / "etc").mkdir(parents=True)
    (hostile / "y " / "etc" / "hostname").write_bytes(b"planted\n")
    (broken / "two\nlines").write_bytes(b"")
    remote_root = sshd.put_tree(local, f"tps-{tmp_path.name}")
    originals = _files(remote_root / records[0].tps_path)
    monkeypatch.setenv("PDAS_TEST_TPS_PASSWORD", sshd.password)
    inst = InstitutionFactory(code="HOSTILE", tps_url=sshd.url(remote_root), tps_password_env="PDAS_TEST_TPS_PASSWORD",
                              tps_known_hosts=sshd.known_hosts)
    array = tmp_path / "array"
    array.mkdir()
    StorageTargetFactory(institution=inst, name="array", url=f"file://{array}")
    sync_institution(institution=inst, actor="test")
    run_curation(institution=inst, actor="test", refresh_tps=False)

    run = start_archive_run(archiving.create_archive_run(institution=inst, actor="test"))
    results = {t.patient.tps_path: t for t in run.tasks.select_related("patient", "archive")}
    assert not list(sshd.root.rglob("pwned")), "a file name ran a command on the TPS host"
    good = results[records[0].tps_path]
    assert good.result == "pass", good.reason
    with tarfile.open(array / good.archive.name, "r:gz") as tar:
        names = tar.getnames()
        extracted = {m.name.removeprefix(records[0].tps_path + "/"): tar.extractfile(m).read()
                     for m in tar.getmembers() if m.isfile() and m.name.startswith(records[0].tps_path + "/")}
    assert "etc/hostname" not in names and len(names) == 2 + len(originals)
    assert extracted == originals
    bad = results[records[1].tps_path]
    assert bad.result == "error" and "line break" in bad.reason, bad.reason
    assert (remote_root / records[1].tps_path / "two\nlines").exists(), "the refused patient's originals stay"
