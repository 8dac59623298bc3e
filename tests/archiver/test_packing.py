"""The packers against the real Pinnacle sample: what plain tar extracts must equal the originals."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import tarfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archiver.packing.inspect import compare_with_manifest, inspect_archive
from archiver.packing.manifest import institution_header
from archiver.packing.stream_packer import PackError, pack_patient
from pinnacle.reader import read_patient
from pinnacle.syntax import decode, parse
from connectors.tps.local import LocalTpsSource

PATIENT = "Institution_1/Mount_0/Patient_1"
PACKED_AT = dt.datetime(2024, 5, 6, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _pack(root: Path, work: Path, codec: str = "gzip", name: str = "LAST-FIRST_000000_20200101100000.tar.gz"):
    with LocalTpsSource(root) as source:
        info = read_patient(source, PATIENT, group="16.2 Smart Enterprise")
        header = institution_header(institution_dir="Institution_1", institution_id=1, name="ToArchive", patient=info)
        packed = pack_patient(source=source, patient=info, work_dir=work, name=name, institution_code="PUMCH",
                              institution_header=header, codec=codec, packed_at=PACKED_AT)
    archive = work / name
    with open(archive, "wb") as out:
        for chunk in packed.iter_chunks():
            out.write(chunk)
    return info, packed, archive


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_plain_tar_extracts_the_originals_byte_for_byte(pinnacle_sample, tmp_path, codec):
    (pinnacle_sample / PATIENT / "Plan_0" / ".auto.plan.Trial.binary.001").write_bytes(b"autosave")
    info, packed, archive = _pack(pinnacle_sample, tmp_path / "work", codec)
    out = tmp_path / "out"
    out.mkdir()
    flag = "-xzf" if codec == "gzip" else "--zstd -xf"
    subprocess.run(f"tar {flag} {archive} -C {out}", shell=True, check=True)
    originals = {p.relative_to(pinnacle_sample).as_posix(): p.read_bytes()
                 for p in (pinnacle_sample / PATIENT).rglob("*") if p.is_file() and not p.name.startswith(".auto.")}
    extracted = {p.relative_to(out).as_posix(): p.read_bytes()
                 for p in (out / PATIENT).rglob("*") if p.is_file()}
    assert extracted == originals
    assert (out / "Institution").is_file() and (out / "PDAS-MANIFEST.json").is_file()
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == packed.sha256
    assert archive.stat().st_size == packed.size
    assert packed.raw_bytes == sum(len(v) for v in originals.values())


def test_member_order_and_manifest_per_spec(pinnacle_sample, tmp_path):
    info, packed, archive = _pack(pinnacle_sample, tmp_path / "work")
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("PDAS-MANIFEST.json"))
        header = parse(decode(tar.extractfile("Institution").read())[0])
    assert names[:2] == ["Institution", "PDAS-MANIFEST.json"]
    assert all(n.startswith(PATIENT) for n in names[2:])
    assert manifest["format"] == "pdas-archive/1"
    assert manifest["institution"] == "PUMCH"
    assert manifest["patient"]["mrn"] == "000000"
    assert manifest["patient"]["tps_patient_id"] == 10000
    assert [p["name"] for p in manifest["plans"]] == ["BRAIN", "CopyOf_1_BRAIN"]
    assert manifest["plans"][0]["created"] == "2020-01-01T10:00:00"
    assert manifest["image_sets"] == [{"image_set_id": 0, "modality": "CT", "images": 101}]
    assert manifest["packed_at"] == "2024-05-06T02:00:00+08:00"
    by_path = {f["path"]: f for f in manifest["files"]}
    patient_file = pinnacle_sample / PATIENT / "Patient"
    assert by_path[f"{PATIENT}/Patient"] == {"path": f"{PATIENT}/Patient", "size": patient_file.stat().st_size,
                                             "sha256": hashlib.sha256(patient_file.read_bytes()).hexdigest()}
    lites = header.get_node("PatientLiteList").get_all("PatientLite")
    assert [lite.get_str("PatientPath") for lite in lites] == [PATIENT]


def test_inspect_accepts_a_good_archive(pinnacle_sample, tmp_path):
    _, packed, archive = _pack(pinnacle_sample, tmp_path / "work")
    with open(archive, "rb") as stream:
        listing = inspect_archive(stream, "gzip")
    assert listing.ok, listing.problems
    assert compare_with_manifest(listing) == []
    assert listing.manifest == packed.manifest


def test_inspect_catches_a_corrupt_byte(pinnacle_sample, tmp_path):
    _, _, archive = _pack(pinnacle_sample, tmp_path / "work")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with open(archive, "rb") as stream:
        listing = inspect_archive(stream, "gzip")
    assert listing.problems or compare_with_manifest(listing)


def test_inspect_catches_truncation(pinnacle_sample, tmp_path):
    _, _, archive = _pack(pinnacle_sample, tmp_path / "work")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 3])
    with open(archive, "rb") as stream:
        listing = inspect_archive(stream, "gzip")
    assert not listing.ok


def test_a_file_changed_while_packing_is_refused(pinnacle_sample, tmp_path):
    with LocalTpsSource(pinnacle_sample) as source:
        info = read_patient(source, PATIENT, group="g")
    (pinnacle_sample / PATIENT / "Patient").write_bytes(b"edited meanwhile")
    with LocalTpsSource(pinnacle_sample) as source, pytest.raises(PackError) as err:
        pack_patient(source=source, patient=info, work_dir=tmp_path / "work", name="x.tar.gz",
                     institution_code="P", institution_header=b"", codec="gzip", packed_at=PACKED_AT)
    assert err.value.changed
    assert list((tmp_path / "work").iterdir()) == []


def test_pack_script_builds_the_same_tree(pinnacle_sample, tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "Institution").write_bytes(b"InstitutionID = 1;\n")
    (stage / "PDAS-MANIFEST.json").write_text("{}")
    script = Path(__file__).resolve().parents[2] / "deploy" / "pinnacle" / "pdas-pack.sh"
    out = tmp_path / "a.tar.gz"
    done = subprocess.run(["sh", str(script), "pack", str(pinnacle_sample), PATIENT, str(stage), str(out), "gzip"],
                          capture_output=True, text=True, check=True)
    digest, size = done.stdout.split()
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest() and int(size) == out.stat().st_size
    with tarfile.open(out, "r:gz") as tar:
        assert tar.getnames()[:2] == ["Institution", "PDAS-MANIFEST.json"]
    missing = subprocess.run(["sh", str(script), "pack", str(pinnacle_sample), "Institution_1/Mount_0/Patient_9",
                              str(stage), str(tmp_path / "b.tar.gz"), "gzip"], capture_output=True, text=True)
    assert missing.returncode == 4 and "no patient directory" in missing.stderr
    assert not (tmp_path / "b.tar.gz").exists()
