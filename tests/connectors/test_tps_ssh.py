"""The SSH TPS source against a real OpenSSH server, checked against the local source on the same files."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from connectors.tps import open_tps_source
from connectors.tps.base import TpsError
from connectors.tps.local import TEMP_PREFIX, LocalTpsSource
from connectors.tps.ssh import SshTpsSource

pytestmark = pytest.mark.servers

P = "Institution_1/Mount_0/Patient_1"
GB_NAME = "张三.txt".encode("gb18030")  # a name written by a Chinese-locale tool: not UTF-8


@pytest.fixture
def tree(sshd, pinnacle_sample, tmp_path) -> Path:
    """The Pinnacle sample in the SSH account's folder, plus links out of it and awkward names."""
    outside = sshd.root / f"outside-{uuid.uuid4().hex[:8]}"
    outside.mkdir()
    (outside / "secret.txt").write_text("not patient data")
    patient = pinnacle_sample / P
    os.symlink(outside / "secret.txt", patient / "link.img")
    os.symlink(outside, patient / "Plan_7")
    (patient / "odd\tname\nwith breaks").write_bytes(b"odd")
    with open(os.fsencode(patient) + b"/" + GB_NAME, "wb") as handle:
        handle.write(b"gb")
    sshd.give_to_user(outside)
    return sshd.put_tree(pinnacle_sample, f"Patients-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def source(sshd, tree):
    with SshTpsSource(sshd.url(tree), key_file=sshd.key_file, known_hosts=sshd.known_hosts) as opened:
        yield opened


@pytest.fixture
def local(tree) -> LocalTpsSource:
    return LocalTpsSource(tree)


def _rows(entries):
    # SFTP (version 3) reports whole seconds.
    return [(e.name, e.path, e.kind, e.size if e.kind != "dir" else None, int(e.mtime)) for e in entries]


def _all_dirs(local: LocalTpsSource, rel: str = "") -> list[str]:
    found = [rel]
    for entry in local.list_dir(rel):
        if entry.kind == "dir":
            found += _all_dirs(local, entry.path)
    return found


def test_listing_and_stat_equal_the_local_source(source, local):
    directories = _all_dirs(local)
    assert len(directories) > 4
    for rel in directories:
        assert _rows(source.list_dir(rel)) == _rows(local.list_dir(rel)), rel
        for entry in local.list_dir(rel):
            assert _rows([source.stat(entry.path)]) == _rows([local.stat(entry.path)]), entry.path
    assert source.stat("").kind == "dir"
    assert source.stat(f"{P}/missing") is None
    assert source.stat("Institution_9/missing") is None


def test_reading_equals_the_local_source(source, local):
    files = [e for e in local.walk_files("") if e.kind == "file"]
    assert len(files) > 5
    for entry in files:
        assert source.read_bytes(entry.path) == local.read_bytes(entry.path), entry.path
    with source.open_read(f"{P}/Patient") as stream:
        head = stream.read(10)
        rest = stream.read()
    assert head + rest == local.read_bytes(f"{P}/Patient")


@pytest.mark.parametrize("gnu_find", [True, False], ids=["find", "sftp-walk"])
def test_walk_equals_the_local_walk(source, local, gnu_find):
    if not gnu_find:
        source._find_printf = False
    assert source._has_gnu_find() is gnu_find
    walked = list(source.walk_files(""))
    assert _rows(walked) == _rows(local.walk_files(""))
    names = {e.name for e in walked}
    assert {"odd\tname\nwith breaks", os.fsdecode(GB_NAME), "Patient"} <= names
    assert _rows(source.walk_files(P)) == _rows(local.walk_files(P))
    # Same clock as stat(), so a walk compared with a later stat sees no phantom change.
    assert [e.mtime for e in walked[:5]] == [source.stat(e.path).mtime for e in walked[:5]]


def test_non_utf8_names_are_carried_through(source, local):
    name = os.fsdecode(GB_NAME)
    assert name in [e.name for e in source.list_dir(P)]
    assert source.read_bytes(f"{P}/{name}") == b"gb"


def test_links_are_reported_and_never_followed(source):
    kinds = {e.name: e.kind for e in source.list_dir(P)}
    assert kinds["link.img"] == kinds["Plan_7"] == "symlink"
    assert source.stat(f"{P}/Plan_7").kind == "symlink"
    for rel in (f"{P}/link.img", f"{P}/Plan_7/secret.txt"):
        with pytest.raises(TpsError, match="symbolic link"):
            source.read_bytes(rel)
    with pytest.raises(TpsError, match="symbolic link"):
        source.list_dir(f"{P}/Plan_7")
    with pytest.raises(TpsError, match="symbolic link"):
        list(source.walk_files(f"{P}/Plan_7"))
    assert not any("secret" in e.path for e in source.walk_files(""))
    with pytest.raises(TpsError, match="symbolic link"):
        source.stat(f"{P}/Plan_7/secret.txt")


@pytest.mark.parametrize("rel", ["../outside", "/etc/passwd", f"{P}/../../../.."])
def test_paths_that_leave_the_root_are_refused(source, rel):
    with pytest.raises(TpsError):
        source.read_bytes(rel)


def test_write_is_atomic_and_replaces(source, tree):
    source.write_bytes_atomic("Institution", b"new header\n")
    source.write_bytes_atomic(f"{P}/new.txt", "张三".encode())
    source.write_bytes_atomic(f"{P}/new.txt", b"second")
    assert (tree / "Institution").read_bytes() == b"new header\n"
    assert (tree / P / "new.txt").read_bytes() == b"second"
    assert not [p for p in tree.rglob(f"{TEMP_PREFIX}*")]


def test_write_over_a_link_replaces_the_link_not_its_target(source, tree):
    target = os.readlink(tree / P / "link.img")
    source.write_bytes_atomic(f"{P}/link.img", b"mine")
    assert not (tree / P / "link.img").is_symlink()
    assert Path(target).read_text() == "not patient data"


def test_write_through_a_linked_folder_is_refused(source):
    with pytest.raises(TpsError, match="symbolic link"):
        source.write_bytes_atomic(f"{P}/Plan_7/new.txt", b"x")


def test_make_dirs(source, tree):
    source.make_dirs("Institution_2/Mount_0/Patient_5")
    source.make_dirs("Institution_2/Mount_0/Patient_5")  # again: fine
    assert (tree / "Institution_2/Mount_0/Patient_5").is_dir()
    with pytest.raises(TpsError, match="symbolic link"):
        source.make_dirs(f"{P}/Plan_7/sub")
    with pytest.raises(TpsError, match="not a folder"):
        source.make_dirs(f"{P}/Patient/sub")


def test_rename_moves_and_never_overwrites(source, tree):
    source.make_dirs("Institution_2/Mount_0")
    source.rename(P, "Institution_2/Mount_0/Patient_1")
    assert (tree / "Institution_2/Mount_0/Patient_1/Patient").is_file()
    assert not (tree / P).exists()
    source.make_dirs(P)
    with pytest.raises(TpsError, match="already exists"):
        source.rename("Institution_2/Mount_0/Patient_1", P)
    with pytest.raises(TpsError, match="does not exist"):
        source.rename("Institution_2/Mount_0/Patient_404", "Institution_2/Mount_0/Patient_405")
    assert (tree / "Institution_2/Mount_0/Patient_1/Patient").is_file()


def test_remove_tree_removes_links_not_their_targets(source, tree):
    target = Path(os.readlink(tree / P / "Plan_7"))
    source.remove_tree(P)
    assert not (tree / P).exists()
    assert (target / "secret.txt").read_text() == "not patient data"
    source.remove_tree(P)  # already gone: nothing to do
    with pytest.raises(TpsError, match="not a folder"):
        source.remove_tree("Institution")
    with pytest.raises(TpsError, match="root"):
        source.remove_tree("")


def test_run_in_the_root_with_quoted_arguments_and_stdin(source, tree):
    odd = ["a b", "it's", "$HOME", "张三", "*", ";rm -rf /"]
    result = source.run(["sh", "-c", 'pwd; for a in "$@"; do printf "%s\\n" "$a"; done', "sh", *odd])
    assert result.exit_status == 0, result.stderr
    assert result.stdout.decode().splitlines() == [str(tree), *odd]
    data = os.urandom(1_500_000)  # bigger than the channel windows: both directions must flow at once
    assert source.run(["cat"], stdin=data).stdout == data
    failed = source.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert (failed.exit_status, failed.stderr) == (3, b"oops\n")


def test_run_timeout_is_retryable(source):
    with pytest.raises(TpsError, match="did not finish") as err:
        source.run(["sleep", "5"], timeout=0.5)
    assert err.value.retryable


def test_host_path(source, tree):
    assert source.host_path("") == str(tree)
    assert source.host_path(f"{P}/Patient") == f"{tree}/{P}/Patient"


def test_password_login_and_the_url_factory(sshd, tree):
    with open_tps_source(sshd.url(tree), password=sshd.password, known_hosts=sshd.known_hosts) as opened:
        assert isinstance(opened, SshTpsSource)
        assert [e.name for e in opened.list_dir("")][:1] == ["Institution"]


def test_wrong_password_is_refused_and_not_retryable(sshd, tree):
    with pytest.raises(TpsError, match="authentication failed") as err:
        SshTpsSource(sshd.url(tree), password="wrong", known_hosts=sshd.known_hosts)
    assert not err.value.retryable
    assert f"{sshd.host}:{sshd.port}" in str(err.value)


def test_wrong_host_key_is_refused_and_not_retryable(sshd, tree, tmp_path):
    from tests.servers.sshd import _keygen

    other = _keygen(tmp_path / "other_host_key", "impostor")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {other}\n")
    with pytest.raises(TpsError, match="host key") as err:
        SshTpsSource(sshd.url(tree), key_file=sshd.key_file, known_hosts=str(known_hosts))
    assert not err.value.retryable


def test_unknown_host_and_missing_known_hosts_are_refused(sshd, tree, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(TpsError, match="known_hosts") as err:
        SshTpsSource(sshd.url(tree), key_file=sshd.key_file, known_hosts=str(empty))
    assert not err.value.retryable
    with pytest.raises(TpsError, match=f"{sshd.host}:{sshd.port}.*known_hosts") as err:
        SshTpsSource(sshd.url(tree), key_file=sshd.key_file)
    assert not err.value.retryable


def test_missing_root_and_bad_url_are_clear_errors(sshd, tree):
    with pytest.raises(TpsError, match=f"TPS root {tree}/nope: does not exist") as err:
        SshTpsSource(sshd.url(tree / "nope"), key_file=sshd.key_file, known_hosts=sshd.known_hosts)
    assert err.value.retryable  # a disk not mounted on the TPS host yet
    with pytest.raises(TpsError, match="not a folder") as err:
        SshTpsSource(sshd.url(tree / "Institution"), key_file=sshd.key_file, known_hosts=sshd.known_hosts)
    assert not err.value.retryable
    with pytest.raises(TpsError, match="ssh://user@host"):
        SshTpsSource("ssh://host-without-user/x", known_hosts=sshd.known_hosts)


def test_stopped_server_gives_retryable_errors(sshd_disposable, pinnacle_sample):
    server = sshd_disposable
    tree = server.put_tree(pinnacle_sample, "Patients")
    opened = SshTpsSource(server.url(tree), key_file=server.key_file, known_hosts=server.known_hosts)
    assert opened.list_dir("")
    server.stop()
    with pytest.raises(TpsError) as err:
        opened.list_dir(P)
    assert err.value.retryable
    with pytest.raises(TpsError) as err:
        opened.run(["true"])
    assert err.value.retryable
    opened.close()
    opened.close()  # idempotent
    with pytest.raises(TpsError, match="cannot connect") as err:
        SshTpsSource(server.url(tree), key_file=server.key_file, known_hosts=server.known_hosts, connect_timeout=3)
    assert err.value.retryable
    assert f"{server.host}:{server.port}" in str(err.value)


@pytest.mark.parametrize("gnu_find", [True, False], ids=["find", "sftp"])
def test_a_folder_swapped_for_a_link_mid_removal_is_not_followed(source, tree, sshd, monkeypatch, gnu_find):
    """The attack: while PDAS removes patient 1's folder, a Pinnacle user replaces its sub-folder by a link
    to patient 2's folder. Patient 2's files must survive (remote find walks by descriptors; over plain
    SFTP each folder's real path is checked right before it is opened)."""
    victim = tree / "Institution_1/Mount_0/Patient_2"
    victim.mkdir()
    for name in ("Patient", "ImageSet_0.img", "plan.Trial"):
        (victim / name).write_text("patient 2's data")
    sshd.give_to_user(victim)  # PDAS's account could delete them: only not following the link saves them
    before = sorted(p.name for p in victim.iterdir())
    swapped = False
    real_listdir = source._listdir

    def listdir_then_swap(clean):
        nonlocal swapped
        entries = real_listdir(clean)
        sub = next((e for e in entries if e.kind == "dir"), None)
        if not swapped and sub is not None:
            swapped = True
            target = tree / sub.path
            os.rename(target, tree / f"{sub.path}.moved")
            os.symlink(victim, target)
        return entries

    monkeypatch.setattr(source, "_has_gnu_find", lambda: gnu_find)
    if gnu_find:
        # find's walk cannot be paused from here: swap before it starts; -P unlinks the link, never enters it.
        sub = next(e for e in source.list_dir(P) if e.kind == "dir" and not e.name.startswith("Plan_7"))
        os.rename(tree / sub.path, tree / f"{sub.path}.moved")
        os.symlink(victim, tree / sub.path)
        source.remove_tree(P)
        assert not (tree / P).exists()
    else:
        monkeypatch.setattr(source, "_listdir", listdir_then_swap)
        with pytest.raises(TpsError, match="symbolic link"):
            source.remove_tree(P)
        assert swapped
    assert sorted(p.name for p in victim.iterdir()) == before
