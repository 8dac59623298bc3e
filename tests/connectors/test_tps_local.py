"""The local TPS source: root-relative paths only, no links followed, atomic writes, safe renames."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from connectors.tps import open_tps_source
from sites.connections import open_institution_tps
from connectors.tps.base import TpsError
from connectors.tps.local import TEMP_PREFIX, LocalTpsSource
from tests.factories import InstitutionFactory


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "Patients"
    (root / "Institution_1/Mount_0/Patient_1/Plan_0").mkdir(parents=True)
    (root / "Institution_1/Mount_0/Patient_1/Patient").write_bytes(b"PatientID = 1;\n")
    (root / "Institution_1/Mount_0/Patient_1/Plan_0/plan.Trial").write_bytes(b"Trial ={\n};\n")
    (tmp_path / "outside.txt").write_text("outside")
    (tmp_path / "outside_dir").mkdir()
    (tmp_path / "outside_dir" / "file").write_text("outside")
    os.symlink(tmp_path / "outside.txt", root / "Institution_1/Mount_0/Patient_1/link.img")
    os.symlink(tmp_path / "outside_dir", root / "Institution_1/Mount_0/Patient_1/Plan_7")
    return root


@pytest.fixture
def source(tree) -> LocalTpsSource:
    return LocalTpsSource(tree)


P = "Institution_1/Mount_0/Patient_1"


def test_list_dir_uses_lstat_and_sorts(source):
    entries = source.list_dir(P)
    assert [(e.name, e.path, e.kind) for e in entries] == [
        ("Patient", f"{P}/Patient", "file"), ("Plan_0", f"{P}/Plan_0", "dir"),
        ("Plan_7", f"{P}/Plan_7", "symlink"), ("link.img", f"{P}/link.img", "symlink")]
    assert entries[0].size == len(b"PatientID = 1;\n") and entries[0].mtime > 0
    assert [e.name for e in source.list_dir("")] == ["Institution_1"]


def test_stat(source):
    assert source.stat(f"{P}/Patient").kind == "file"
    assert source.stat(f"{P}/link.img").kind == "symlink"
    assert source.stat(f"{P}/nothing") is None
    assert source.stat(f"{P}/nothing/deeper") is None
    assert source.stat("").kind == "dir"


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/passwd", f"{P}/../../../../outside.txt", "a/\x00b"])
def test_paths_leaving_the_root_are_refused(source, bad):
    for call in (source.read_bytes, source.list_dir, source.stat, lambda r: source.write_bytes_atomic(r, b"x"),
                 source.make_dirs, source.remove_tree, source.host_path):
        with pytest.raises(TpsError, match="TPS root"):
            call(bad)
    with pytest.raises(TpsError):
        source.rename(f"{P}/Patient", bad)


def test_links_are_never_read_or_entered(source):
    with pytest.raises(TpsError, match="symbolic link"):
        source.read_bytes(f"{P}/link.img")
    with pytest.raises(TpsError, match="symbolic link"):
        source.list_dir(f"{P}/Plan_7")
    with pytest.raises(TpsError, match="symbolic link"):
        source.read_bytes(f"{P}/Plan_7/file")  # a link in the middle of the path
    with pytest.raises(TpsError, match="symbolic link"):
        source.open_read(f"{P}/Plan_7/file")
    assert list(source.walk_files(P)) == [e for e in source.walk_files(P) if "outside" not in e.path]
    assert {e.path for e in source.walk_files(P)} == {f"{P}/Patient", f"{P}/Plan_7", f"{P}/link.img",
                                                       f"{P}/Plan_0/plan.Trial"}


def test_reading(source):
    assert source.read_bytes(f"{P}/Patient") == b"PatientID = 1;\n"
    with source.open_read(f"{P}/Plan_0/plan.Trial") as handle:
        assert handle.read() == b"Trial ={\n};\n"
    with pytest.raises(TpsError, match="does not exist"):
        source.read_bytes(f"{P}/missing")
    with pytest.raises(TpsError, match="not a regular file"):
        source.read_bytes(f"{P}/Plan_0")


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(source, tree):
    source.write_bytes_atomic("Institution", b"first")
    source.write_bytes_atomic("Institution", b"second, longer")
    assert (tree / "Institution").read_bytes() == b"second, longer"
    assert not [p for p in tree.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_atomic_write_failure_keeps_the_old_file(source, tree, monkeypatch):
    (tree / "Institution").write_bytes(b"old")

    def failing_replace(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(TpsError, match="cannot write Institution: No space left on device"):
        source.write_bytes_atomic("Institution", b"new")
    assert (tree / "Institution").read_bytes() == b"old"
    assert not [p for p in tree.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_atomic_write_replaces_a_link_instead_of_writing_through_it(source, tree, tmp_path):
    source.write_bytes_atomic(f"{P}/link.img", b"new")
    assert (tmp_path / "outside.txt").read_text() == "outside"
    assert not (tree / P / "link.img").is_symlink()


def test_rename_refuses_an_existing_destination(source, tree):
    source.make_dirs("Institution_2/Mount_0")
    with pytest.raises(TpsError, match="already exists"):
        source.rename(f"{P}/Patient", f"{P}/Plan_0/plan.Trial")
    (tree / "Institution_2/Mount_0/Patient_1").mkdir()  # an empty folder would be silently replaced by rename(2)
    with pytest.raises(TpsError, match="already exists"):
        source.rename(P, "Institution_2/Mount_0/Patient_1")
    assert (tree / P / "Patient").exists()
    (tree / "Institution_2/Mount_0/Patient_1").rmdir()
    source.rename(P, "Institution_2/Mount_0/Patient_1")
    assert (tree / "Institution_2/Mount_0/Patient_1/Patient").read_bytes() == b"PatientID = 1;\n"
    with pytest.raises(TpsError, match="does not exist"):
        source.rename(P, "Institution_2/Mount_0/Patient_9")


def test_make_dirs_and_remove_tree_do_not_follow_links(source, tree, tmp_path):
    source.make_dirs(".pdas-quarantine/a/b")
    source.make_dirs(".pdas-quarantine/a/b")  # fine if it exists
    assert (tree / ".pdas-quarantine/a/b").is_dir()
    source.remove_tree(P)
    assert not (tree / P).exists()
    assert (tmp_path / "outside.txt").read_text() == "outside"
    assert (tmp_path / "outside_dir" / "file").exists()
    source.remove_tree(P)  # already gone: nothing to do
    with pytest.raises(TpsError):
        source.remove_tree("")


def test_run_in_the_root_with_timeout(source, tree):
    result = source.run([sys.executable, "-c", "import os,sys; print(os.getcwd()); print(sys.stdin.read())"],
                        stdin=b"hello")
    assert result.exit_status == 0
    assert result.stdout.decode().split() == [str(tree), "hello"]
    failed = source.run([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert failed.exit_status == 3
    with pytest.raises(TpsError, match="did not finish within 0.5 s") as caught:
        source.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)
    assert caught.value.retryable
    with pytest.raises(TpsError, match="cannot run"):
        source.run(["/nonexistent/pack-script"])


def test_host_path(source, tree):
    assert source.host_path(P) == str(tree / P)
    assert source.host_path("") == str(tree)


# --- the factory ----------------------------------------------------------------------------------


def test_open_file_url(tree):
    with open_tps_source(f"file://{tree}") as source:
        assert isinstance(source, LocalTpsSource) and source.root == tree


@pytest.mark.parametrize("url, message", [
    ("ftp://host/Patients", "unsupported scheme 'ftp'"),
    ("/data/Patients", "unsupported scheme '(none)'"),
    ("file://otherhost/data", "a file URL takes no host"),
    ("ssh://tps-host:notaport/Patients", "expected ssh://user@host[:port]/absolute/path"),
    ("ssh:///Patients", "expected ssh://user@host[:port]/absolute/path"),
    ("ssh://tps-host", "expected ssh://user@host[:port]/absolute/path"),
])
def test_bad_urls_name_the_url_with_the_site_configurations_own_words(url, message):
    """The opener asks the same check as load_site_config (connectors.tps.url_problem)."""
    from sites.services.site_config.rules import tps_url_problem

    with pytest.raises(TpsError, match=re.escape(message)) as caught:
        open_tps_source(url)
    assert url in str(caught.value) and str(caught.value) == tps_url_problem(url)


def test_unreachable_root_is_retryable(tmp_path):
    with pytest.raises(TpsError, match="not a reachable folder") as caught:
        open_tps_source(f"file://{tmp_path}/not-mounted")
    assert caught.value.retryable


def test_ssh_url_goes_to_the_ssh_source(monkeypatch):
    import types

    calls = []

    class FakeSsh:
        def __init__(self, url, **kwargs):
            calls.append((url, kwargs))

    monkeypatch.setitem(sys.modules, "connectors.tps.ssh", types.SimpleNamespace(SshTpsSource=FakeSsh))
    open_tps_source("ssh://pinnacle@tps:2222/usr/local/adacnew/Patients", password="pw", key_file="/k",
                    known_hosts="/kh", connect_timeout=3)
    assert calls == [("ssh://pinnacle@tps:2222/usr/local/adacnew/Patients",
                      {"password": "pw", "key_file": "/k", "known_hosts": "/kh", "connect_timeout": 3})]


@pytest.mark.django_db
def test_open_institution_tps_resolves_secrets(monkeypatch, tree, tmp_path):
    import types

    calls = []
    monkeypatch.setitem(sys.modules, "connectors.tps.ssh", types.SimpleNamespace(
        SshTpsSource=lambda url, **kwargs: calls.append(kwargs)))
    inst = InstitutionFactory(tps_url="ssh://p@tps/Patients", tps_password_env="PDAS_TEST_TPS_PW",
                              tps_key_file="/keys/id", tps_known_hosts="/keys/known_hosts")
    monkeypatch.delenv("PDAS_TEST_TPS_PW", raising=False)
    monkeypatch.delenv("PDAS_TEST_TPS_PW_FILE", raising=False)
    with pytest.raises(TpsError, match=f"institution {inst.code}: tps_password_env: PDAS_TEST_TPS_PW is not set"):
        open_institution_tps(inst)
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("PDAS_TEST_TPS_PW_FILE", str(secret_file))
    open_institution_tps(inst)
    monkeypatch.setenv("PDAS_TEST_TPS_PW", "from-env")
    open_institution_tps(inst)
    assert [c["password"] for c in calls] == ["from-file", "from-env"]
    assert calls[0]["key_file"] == "/keys/id" and calls[0]["known_hosts"] == "/keys/known_hosts"
    local = InstitutionFactory(tps_url=f"file://{tree}")
    assert isinstance(open_institution_tps(local), LocalTpsSource)
