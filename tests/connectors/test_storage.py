"""The storage-target contract, run against every backend on real servers."""
from __future__ import annotations

import hashlib
import uuid

import pytest

from connectors.storage import StorageError, open_storage
from connectors.storage.base import is_temporary


def _open(kind: str, request, tmp_path):
    if kind == "file":
        root = tmp_path / "array"
        root.mkdir()
        return open_storage(f"file://{root}")
    if kind.startswith("sftp"):
        sshd = request.getfixturevalue("sshd")
        root = sshd.root / f"array-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        sshd.give_to_user(root)
        storage = open_storage(sshd.url(root, scheme="sftp"), password=sshd.password, known_hosts=sshd.known_hosts)
        storage.remote_hash = kind == "sftp"  # "sftp-readback": a host that allows no exec
        return storage
    server = request.getfixturevalue("ftp_server" if kind == "ftps" else "ftp_server_plain")
    return open_storage(server.url(server.new_dir()), password=server.password, ca_file=server.ca_file,
                        allow_plain_ftp=kind == "ftp")


@pytest.fixture(params=["file", "sftp", "sftp-readback", "ftps", "ftp"])
def backend(request, tmp_path):
    with _open(request.param, request, tmp_path) as storage:
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
    expected = {"FileStorage": "local_hash", "FtpStorage": "read_back"}.get(type(backend).__name__)
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
        open_storage("s3://bucket/archive")


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
