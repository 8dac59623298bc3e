"""The storage-target contract, run against every backend on real servers."""
from __future__ import annotations

import hashlib
import uuid

import pytest

from connectors.storage import StorageError, open_storage
from connectors.storage.base import is_temporary, temporary_name


def _opener(kind: str, request, tmp_path):
    """A function that opens (again: a later run's connection) one fresh target of ``kind``, and one that damages
    a stored file there the way a failing disk or a hand on the server would (``damage(name, data)``)."""
    if kind == "file":
        root = tmp_path / "array"
        root.mkdir()
        return (lambda: open_storage(f"file://{root}")), _file_damage(root)
    if kind.startswith("sftp"):
        sshd = request.getfixturevalue("sshd")
        root = sshd.root / f"array-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        sshd.give_to_user(root)

        def open_sftp():
            storage = open_storage(sshd.url(root, scheme="sftp"), password=sshd.password, known_hosts=sshd.known_hosts)
            storage.remote_hash = kind == "sftp"  # "sftp-readback": a host that allows no exec
            return storage
        return open_sftp, _file_damage(root)
    if kind == "smb":
        samba = request.getfixturevalue("samba_server")
        folder = samba.new_dir("array")
        return (lambda: open_storage(samba.url(folder), password=samba.password)), _file_damage(samba.share_root / folder)
    if kind.startswith("s3"):
        s3 = request.getfixturevalue("s3_server")
        bucket = s3.new_bucket(object_lock=kind == "s3-locked")

        def damage(name: str, data: bytes) -> None:  # another program writes over it (a new version)
            s3.client().put_object(Bucket=bucket, Key=f"archive/{name}", Body=data)
        return (lambda: open_storage(s3.url(bucket), access_key=s3.access_key, secret_key=s3.secret_key,
                                     ca_file=s3.ca_file)), damage
    server = request.getfixturevalue("ftp_server" if kind == "ftps" else "ftp_server_plain")
    folder = server.new_dir()
    return (lambda: open_storage(server.url(folder), password=server.password, ca_file=server.ca_file,
                                 allow_plain_ftp=kind == "ftp")), _file_damage(server.root / folder.lstrip("/"))


def _file_damage(root):
    def damage(name: str, data: bytes) -> None:
        (root / name).write_bytes(data)
    return damage


KINDS = ["file", "sftp", "sftp-readback", "ftps", "ftp", "smb", "s3", "s3-locked"]


@pytest.fixture(params=KINDS)
def target(request, tmp_path):
    """(open, damage): open a connection to one fresh target of each kind; damage a file stored there."""
    return _opener(request.param, request, tmp_path)


@pytest.fixture
def backend(target):
    with target[0]() as storage:
        yield storage


def test_upload_stores_file_and_leaves_no_temporary(backend):
    data = b"x" * 3_000_001
    seen = []
    written = backend.upload("A_1_20200101000000.tar.gz", [data[:1_000_000], data[1_000_000:]], progress=seen.append)
    assert written == len(data) == sum(seen)
    assert backend.read_bytes("A_1_20200101000000.tar.gz") == data
    assert [f.name for f in backend.list_files()] == ["A_1_20200101000000.tar.gz"]
    assert not any(is_temporary(f.name) for f in backend.list_files())


def test_digest_matches_content(backend):
    data = "张三".encode() * 1000
    backend.write_bytes("Z.tar.gz", data)
    digest = backend.digest("Z.tar.gz")
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.size == len(data)
    expected = {"FileStorage": "local_hash", "FtpStorage": "read_back", "SmbStorage": "read_back",
                "S3Storage": "read_back"}.get(type(backend).__name__)
    if type(backend).__name__ == "SftpStorage":
        expected = "remote_hash" if backend.remote_hash else "read_back"
    assert digest.method == expected


def test_utf8_names_survive(backend):
    backend.write_bytes("张三_0001_20200101000000.tar.gz", b"data")
    assert [f.name for f in backend.list_files()] == ["张三_0001_20200101000000.tar.gz"]


def test_existing_file_is_never_overwritten(backend):
    backend.write_bytes("a.tar.gz", b"first")
    with pytest.raises(StorageError) as err:
        backend.write_bytes("a.tar.gz", b"second")
    assert err.value.exists
    assert backend.read_bytes("a.tar.gz") == b"first"
    assert [f.name for f in backend.list_files()] == ["a.tar.gz"]


def test_failed_upload_removes_temporary(backend):
    def chunks():
        yield b"partial"
        raise ConnectionError("link dropped")

    with pytest.raises(ConnectionError):
        backend.upload("b.tar.gz", chunks())
    assert backend.list_files() == []
    assert backend.stat("b.tar.gz") is None


def test_a_file_listed_is_still_found_by_stat_and_its_digest(backend):
    """After a listing (FTP sends it in ASCII mode, where many servers refuse SIZE) a stored file is still
    there for ``stat``, ``digest`` and ``upload``'s no-overwrite rule, never taken for missing."""
    backend.upload("listed.bin", [b"x" * 1000])
    assert [f.name for f in backend.list_files()] == ["listed.bin"]
    assert backend.stat("listed.bin").size == 1000
    backend.list_files()
    assert backend.digest("listed.bin").size == 1000
    backend.list_files()
    with pytest.raises(StorageError, match="already exists"):
        backend.upload("listed.bin", [b"y"])


def test_stat_of_missing_file_is_none(backend):
    assert backend.stat("missing.tar.gz") is None


def test_a_crashed_upload_leaves_a_temporary_that_the_next_run_removes(target):
    """A worker killed between writing and renaming leaves its temporary upload (on S3: a multipart upload
    not completed). The next run's connection lists it as a temporary name and removes it; the archive is
    then stored whole."""
    open_target, _ = target
    with open_target() as crashed:
        crashed._write_temporary(temporary_name("c.tar.gz"), [b"half of it"], None)  # and then SIGKILL
    with open_target() as later:
        leftovers = [f.name for f in later.list_files()]
        assert len(leftovers) == 1 and is_temporary(leftovers[0]) and leftovers[0].startswith(".c.tar.gz."), leftovers
        assert later.stat("c.tar.gz") is None
        later.remove(leftovers[0])
        assert later.list_files() == []
        later.upload("c.tar.gz", [b"the whole archive"])
        assert later.read_bytes("c.tar.gz") == b"the whole archive"
        assert [f.name for f in later.list_files()] == ["c.tar.gz"]


def test_an_upload_that_arrives_truncated_is_refused_and_leaves_nothing(backend, monkeypatch):
    """The target stored fewer bytes than were sent (a link cut that the protocol did not report): upload()
    compares the stored size, fails retryably and removes the temporary."""
    real = backend._write_temporary

    def short_write(temp, chunks, progress):
        data = list(chunks)
        return real(temp, data[:-1], progress) + len(data[-1])

    monkeypatch.setattr(backend, "_write_temporary", short_write)
    with pytest.raises(StorageError) as err:
        backend.upload("t.tar.gz", [b"a" * 1000, b"b" * 10])
    assert err.value.retryable and "stored" in str(err.value)
    assert backend.list_files() == []


@pytest.mark.parametrize("damaged", ["flipped", "truncated"])
def test_a_file_damaged_on_the_target_is_found_by_its_digest(target, damaged):
    """A bit flipped or the tail cut off after the upload: the digest measured there (hashed on the target or
    read back) and the size differ from what was stored."""
    open_target, damage = target
    data = bytes(range(256)) * 400
    with open_target() as storage:
        storage.upload("d.tar.gz", [data])
        assert storage.digest("d.tar.gz").sha256 == hashlib.sha256(data).hexdigest()
        bad = bytearray(data)
        if damaged == "flipped":
            bad[len(bad) // 2] ^= 0x01
        else:
            del bad[-100:]
        damage("d.tar.gz", bytes(bad))
        digest = storage.digest("d.tar.gz")
    assert digest.sha256 != hashlib.sha256(data).hexdigest()
    assert (digest.size == len(data)) == (damaged == "flipped")


def test_listing_holds_every_file_and_only_the_folders_own(backend):
    names = [f"P{n:03d}_{n}_20200101000000.tar.gz" for n in range(12)]
    for name in names:
        backend.write_bytes(name, name.encode())
    listed = backend.list_files()
    assert [f.name for f in listed] == sorted(names)
    assert all(f.size == len(f.name) for f in listed)


@pytest.mark.parametrize("name", ["../escape", "sub/dir", ".hidden", ""])
def test_names_must_be_plain(backend, name):
    with pytest.raises(StorageError):
        backend.write_bytes(name, b"x")


def test_unreachable_file_target_is_an_error_not_an_empty_listing(tmp_path):
    with pytest.raises(StorageError) as err:
        open_storage(f"file://{tmp_path}/not-mounted")
    assert "not-mounted" in str(err.value)


def test_plain_ftp_is_refused_unless_allowed():
    with pytest.raises(StorageError, match="plain FTP"):
        open_storage("ftp://user@127.0.0.1:2121/archive")


def test_unknown_scheme_is_refused():
    with pytest.raises(StorageError, match="unsupported target"):
        open_storage("webdav://host/archive")


def test_sftp_with_an_unknown_host_key_is_refused(sshd, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text(f"[{sshd.host}]:{sshd.port} ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIBgQ0J6d3lKXrQeK0ZCpCk4yWHXDXsm8mKvh8qgrsPM8\n")
    with pytest.raises(StorageError) as err:
        open_storage(sshd.url(sshd.root, scheme="sftp"), password=sshd.password, known_hosts=str(other))
    assert not err.value.retryable and "host key" in str(err.value)


def test_sftp_wrong_password_is_not_retried(sshd):
    with pytest.raises(StorageError) as err:
        open_storage(sshd.url(sshd.root, scheme="sftp"), password="wrong", known_hosts=sshd.known_hosts)
    assert not err.value.retryable and "authentication" in str(err.value)


def test_ftps_with_an_untrusted_certificate_is_refused(ftp_server):
    with pytest.raises(StorageError) as err:
        open_storage(ftp_server.url("/"), password=ftp_server.password)  # system CAs do not sign it
    assert "TLS" in str(err.value)


def test_stopped_server_is_a_retryable_error(sshd_disposable):
    url = sshd_disposable.url(sshd_disposable.root, scheme="sftp")
    sshd_disposable.stop()
    with pytest.raises(StorageError) as err:
        open_storage(url, password=sshd_disposable.password, known_hosts=sshd_disposable.known_hosts, timeout=3)
    assert err.value.retryable
