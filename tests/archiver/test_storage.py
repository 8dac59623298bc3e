"""The storage-target contract, run against every backend on real servers."""
from __future__ import annotations

import hashlib

import pytest

from archiver.storage import StorageError, open_storage
from archiver.storage.base import is_temporary


@pytest.fixture(params=["file"])
def backend(request, tmp_path):
    root = tmp_path / "array"
    root.mkdir()
    with open_storage(f"file://{root}") as storage:
        storage.test_root = root
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
