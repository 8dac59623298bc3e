"""The pack script (deploy/pinnacle/pdas-pack.sh) against file names planted in a patient folder.

A file name is data: it must never become a tar option (a command run on the TPS host), several
names (a host file pulled into the archive), or a second line of the ``hash`` output. Each test plants
the name an attacker would and checks what the script did with it (docs/security.md).

Every test runs twice: with the system's ``sh`` and GNU tools, and in a restricted POSIX environment as
on an old or minimal TPS host: ``posh`` (a shell with POSIX features only) with nothing on PATH but
BusyBox's applets (its tar, find, sort, gzip, sha256sum).
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "pinnacle" / "pdas-pack.sh"
PATIENT = "Patient_1"
# GNU tar runs the action through the shell at the first record: the name needs no space or slash.
CHECKPOINT_NAME = "x --checkpoint=1 --checkpoint-action=exec=id>pwned"


RUN: dict = {"shell": "sh", "env": None}


@pytest.fixture(params=["system", "posh-busybox"], autouse=True)
def environment(request, tmp_path_factory):
    """How the script is run: the system's sh, or posh with only BusyBox applets on PATH."""
    if request.param == "system":
        RUN.update(shell="sh", env=None)
        yield request.param
        return
    posh, busybox = shutil.which("posh"), shutil.which("busybox")
    if not posh or not busybox:
        pytest.fail("posh and busybox are needed (deploy/apt-packages.txt; deploy/dev.sh setup installs them)")
    applets = tmp_path_factory.mktemp("busybox")
    subprocess.run([busybox, "--install", "-s", str(applets)], check=True)
    RUN.update(shell=posh, env={"PATH": str(applets), "LC_ALL": "C"})
    yield request.param
    RUN.update(shell="sh", env=None)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "Patients"
    patient = root / PATIENT
    patient.mkdir(parents=True)
    (patient / "Patient").write_bytes(b"PatientID = 1;\n")
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "Institution").write_bytes(b"InstitutionID = 1;\n")
    (stage / "PDAS-MANIFEST.json").write_text("{}")
    return root, patient, stage


def _pack(root: Path, stage: Path, out: Path, patient: str = PATIENT):
    return subprocess.run([RUN["shell"], str(SCRIPT), "pack", str(root), patient, str(stage), str(out), "gzip"],
                          capture_output=True, text=True, env=RUN["env"])


def _hash(root: Path, patient: str = PATIENT):
    return subprocess.run([RUN["shell"], str(SCRIPT), "hash", str(root), patient], capture_output=True, env=RUN["env"])


def _members(archive: Path) -> list[str]:
    with tarfile.open(archive, "r:gz") as tar:
        return tar.getnames()


def _patient_files(patient: Path) -> list[str]:
    return sorted(f"{PATIENT}/{p.relative_to(patient).as_posix()}" for p in patient.rglob("*") if p.is_file())


def test_a_file_named_like_tar_options_runs_nothing(tree, tmp_path):
    root, patient, stage = tree
    (patient / CHECKPOINT_NAME).write_bytes(b"")
    done = _pack(root, stage, tmp_path / "a.tar.gz")
    assert done.returncode == 0, done.stderr
    assert not (root / "pwned").exists() and not list(tmp_path.rglob("pwned")), "a file name ran a command"
    assert _members(tmp_path / "a.tar.gz")[2:] == _patient_files(patient)


def test_a_folder_with_a_trailing_space_pulls_in_no_host_file(tree, tmp_path):
    root, patient, stage = tree
    (patient / "y").write_bytes(b"")
    # Split on white space, "Patient_1/y /etc/hostname" would be "Patient_1/y" and the host's /etc/hostname.
    planted = patient / "y " / "etc"
    planted.mkdir(parents=True)
    (planted / "hostname").write_bytes(b"the patient's own file\n")
    done = _pack(root, stage, tmp_path / "a.tar.gz")
    assert done.returncode == 0, done.stderr
    members = _members(tmp_path / "a.tar.gz")
    assert "etc/hostname" not in members
    assert members[2:] == _patient_files(patient)
    with tarfile.open(tmp_path / "a.tar.gz", "r:gz") as tar:
        assert tar.extractfile(f"{PATIENT}/y /etc/hostname").read() == b"the patient's own file\n"


@pytest.mark.parametrize("name", ["back\\nslash", "star*", "q?", "[ab]", "$(id)", "`id`", "-dash", " lead", "trail ",
                                  "tab\there", "semi;colon", "ÄÖ 张三"])
def test_odd_names_are_packed_and_hashed_as_they_are(tree, tmp_path, name):
    root, patient, stage = tree
    (patient / name).write_bytes(name.encode())
    (patient / "starfile").write_bytes(b"a name a glob could match")
    done = _pack(root, stage, tmp_path / "a.tar.gz")
    assert done.returncode == 0, done.stderr
    assert _members(tmp_path / "a.tar.gz")[2:] == _patient_files(patient)
    hashed = _hash(root)
    assert hashed.returncode == 0, hashed.stderr
    lines = hashed.stdout.decode().split("\n")[:-1]
    assert {line.split(" ", 2)[2]: line.split(" ", 2)[0] for line in lines} == {
        path: hashlib.sha256((root / path).read_bytes()).hexdigest() for path in _patient_files(patient)}


def test_a_non_utf8_name_is_packed_byte_for_byte(tree, tmp_path):
    root, patient, stage = tree
    raw = "张三".encode("gb18030")
    with open(bytes(patient) + b"/" + raw, "wb") as handle:
        handle.write(b"gb18030 name")
    done = _pack(root, stage, tmp_path / "a.tar.gz")
    assert done.returncode == 0, done.stderr
    with tarfile.open(tmp_path / "a.tar.gz", "r:gz", encoding="utf-8", errors="surrogateescape") as tar:
        assert f"{PATIENT}/{raw.decode('utf-8', 'surrogateescape')}" in tar.getnames()
    assert f" {PATIENT}/".encode() + raw + b"\n" in _hash(root).stdout


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_line_break_in_a_name_refuses_the_patient(tree, tmp_path, where):
    root, patient, stage = tree
    if where == "file":
        (patient / "two\nlines").write_bytes(b"")
    else:
        (patient / "two\nlines").mkdir()
        (patient / "two\nlines" / "Plan").write_bytes(b"")
    hashed = _hash(root)
    assert hashed.returncode == 4 and hashed.stdout == b""
    assert b"contains a line break" in hashed.stderr and PATIENT.encode() in hashed.stderr
    packed = _pack(root, stage, tmp_path / "a.tar.gz")
    assert packed.returncode == 4 and "contains a line break" in packed.stderr
    assert not list(tmp_path.glob("a.tar.gz*"))


@pytest.mark.parametrize("patient", ["-P", "../Patients/Patient_1", "/etc", "Patient_1/../Patient_1", ""])
def test_a_patient_path_that_is_an_option_or_leaves_the_root_is_refused(tree, tmp_path, patient):
    root, _, stage = tree
    assert _hash(root, patient).returncode == 2
    assert _pack(root, stage, tmp_path / "a.tar.gz", patient).returncode == 2
    assert not (tmp_path / "a.tar.gz").exists()
