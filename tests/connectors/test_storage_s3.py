"""S3 targets beyond the shared contract (tests/connectors/test_storage.py): multipart uploads, paginated
listings, the no-overwrite rule against other writers, Object Lock, and the URL rules. Against moto's S3
server over HTTPS in its own process (tests/servers/s3.py); what moto leaves unproven is in docs/testing.md."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from connectors.storage import ObjectLock, StorageError, open_storage, url_problem
from connectors.storage.s3 import s3_url_problem

pytestmark = pytest.mark.servers

UTC = dt.timezone.utc


def _open(s3_server, bucket: str, prefix: str = "archive", **options):
    return open_storage(s3_server.url(bucket, prefix), access_key=s3_server.access_key,
                        secret_key=s3_server.secret_key, ca_file=s3_server.ca_file, **options)


@pytest.fixture
def locked(s3_server):
    bucket = s3_server.new_bucket(object_lock=True)
    with _open(s3_server, bucket) as storage:
        yield storage


def test_a_large_archive_goes_up_in_parts_each_with_its_sha256(s3_server):
    bucket = s3_server.new_bucket()
    data = bytes(range(256)) * (45 * 1024)  # 11.25 MiB: three parts of 5 MiB
    with _open(s3_server, bucket) as storage:
        storage.part_size = 5 << 20
        sent = []
        storage._client.meta.events.register("before-call.s3.UploadPart",
                                             lambda params, **_: sent.append(params["headers"].get("x-amz-checksum-sha256")))
        assert storage.upload("big.tar.gz", [data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000)]) == len(data)
        assert storage.digest("big.tar.gz").sha256 == hashlib.sha256(data).hexdigest()
    assert len(sent) == 3 and all(sent), "every part carries its SHA-256 for the store to check"
    head = s3_server.client().head_object(Bucket=bucket, Key="archive/big.tar.gz")
    assert head["ETag"].strip('"').endswith("-3") and head["ContentLength"] == len(data)


def test_listing_follows_every_page_and_stays_in_its_prefix(s3_server):
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    for n in range(7):
        client.put_object(Bucket=bucket, Key=f"archive/A{n}.tar.gz", Body=b"x" * n)
    client.put_object(Bucket=bucket, Key="archive/sub/deeper.tar.gz", Body=b"not ours")
    client.put_object(Bucket=bucket, Key="archive-2/B.tar.gz", Body=b"not ours")
    client.put_object(Bucket=bucket, Key="top.tar.gz", Body=b"not ours")
    with _open(s3_server, bucket) as storage:
        storage.page_size = 2
        listed = storage.list_files()
    assert [(f.name, f.size) for f in listed] == [(f"A{n}.tar.gz", n) for n in range(7)]


def test_an_object_another_writer_stored_meanwhile_is_not_replaced(s3_server):
    """Between the upload's start and its completion someone else stores the name: completing with
    If-None-Match fails, the other object stays, and the multipart upload is aborted."""
    bucket = s3_server.new_bucket()
    other = s3_server.client()
    with _open(s3_server, bucket) as storage:
        # After PDAS's own HEAD check, right before it completes: only If-None-Match can catch this one.
        storage._client.meta.events.register(
            "before-call.s3.CompleteMultipartUpload",
            lambda **_: other.put_object(Bucket=bucket, Key="archive/race.tar.gz", Body=b"theirs") and None)
        with pytest.raises(StorageError) as err:
            storage.upload("race.tar.gz", [b"ours"])
        assert err.value.exists
        assert storage.read_bytes("race.tar.gz") == b"theirs"
        assert [(f.name, f.size) for f in storage.list_files()] == [("race.tar.gz", 6)]  # no upload left behind


def test_a_bucket_with_object_lock_keeps_the_archive_until_its_date(locked, s3_server):
    until = dt.datetime(2056, 3, 1, tzinfo=UTC)
    locked.upload("kept.tar.gz", [b"archive"], lock=ObjectLock(retain_until=until))
    locked.write_bytes("kept.tar.gz.sha256", b"sidecar", lock=ObjectLock(retain_until=until))
    assert locked.object_lock
    assert locked.lock_of("kept.tar.gz") == ObjectLock(retain_until=until, legal_hold=False)
    assert locked.lock_of("kept.tar.gz.sha256").retain_until == until

    with pytest.raises(StorageError, match="Object Lock"):
        locked.remove("kept.tar.gz")
    client = s3_server.client()
    key = f"{locked.prefix}kept.tar.gz"
    version = client.head_object(Bucket=locked.bucket, Key=key)["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        client.delete_object(Bucket=locked.bucket, Key=key, VersionId=version)  # not even with the store's own client
    with pytest.raises(StorageError) as err:
        locked.upload("kept.tar.gz", [b"other bytes"])
    assert err.value.exists
    assert locked.read_bytes("kept.tar.gz") == b"archive"


def test_retention_is_only_ever_extended_and_the_legal_hold_mirrors_pdas(locked):
    first = dt.datetime(2050, 1, 1, tzinfo=UTC)
    later = dt.datetime(2060, 1, 1, tzinfo=UTC)
    locked.upload("a.tar.gz", [b"archive"], lock=ObjectLock(retain_until=later))
    assert locked.apply_lock("a.tar.gz", ObjectLock(retain_until=first))
    assert locked.lock_of("a.tar.gz").retain_until == later, "an earlier date never shortens the retention"
    locked.apply_lock("a.tar.gz", ObjectLock(retain_until=later, legal_hold=True))
    assert locked.lock_of("a.tar.gz").legal_hold
    locked.apply_lock("a.tar.gz", ObjectLock(retain_until=later, legal_hold=False))
    assert not locked.lock_of("a.tar.gz").legal_hold


def test_a_legal_hold_alone_forbids_deleting(locked):
    locked.upload("held.tar.gz", [b"archive"], lock=ObjectLock(legal_hold=True))
    with pytest.raises(StorageError, match="Object Lock"):
        locked.remove("held.tar.gz")
    locked.apply_lock("held.tar.gz", ObjectLock(legal_hold=False))
    locked.remove("held.tar.gz")
    assert locked.stat("held.tar.gz") is None


def test_without_object_lock_the_lock_is_ignored_and_remove_deletes(s3_server):
    bucket = s3_server.new_bucket()
    with _open(s3_server, bucket) as storage:
        assert not storage.object_lock
        storage.upload("a.tar.gz", [b"x"], lock=ObjectLock(retain_until=dt.datetime(2050, 1, 1, tzinfo=UTC)))
        assert storage.apply_lock("a.tar.gz", ObjectLock(legal_hold=True)) is False
        storage.remove("a.tar.gz")
        assert storage.list_files() == []


def test_a_missing_bucket_is_a_lasting_error(s3_server):
    with pytest.raises(StorageError) as err:
        _open(s3_server, "pdas-no-such-bucket")
    assert not err.value.retryable and "does not exist" in str(err.value)


def test_an_untrusted_certificate_is_refused(s3_server):
    bucket = s3_server.new_bucket()
    with pytest.raises(StorageError) as err:
        open_storage(s3_server.url(bucket), access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    assert "certificate" in str(err.value).lower() or "TLS" in str(err.value)
    assert s3_server.secret_key not in str(err.value)


def test_a_stopped_store_is_a_retryable_error(tmp_path):
    from tests.servers.ports import free_port

    url = f"s3://bucket/archive?endpoint=https://127.0.0.1:{free_port()}&region=us-east-1"
    with pytest.raises(StorageError) as err:
        open_storage(url, access_key="A", secret_key="very-secret", timeout=2)
    assert err.value.retryable and "very-secret" not in str(err.value)


@pytest.mark.parametrize("url, problem", [
    ("s3://bucket/p", "names no endpoint"),
    ("s3://Bucket_1/p?endpoint=https://h", "not a bucket name"),
    ("s3://user@bucket/p?endpoint=https://h", "stands alone"),
    ("s3://bucket/p?endpoint=ftp://h", "must be https://"),
    ("s3://bucket/p?endpoint=https://h/path", "must be https://"),
    ("s3://bucket/p?endpoint=https://h&acl=public", "unknown query parameter"),
    ("s3://bucket/../p?endpoint=https://h", "'.', '..'"),
    ("s3://bucket/p?endpoint=https://h&region=Not%20One", "not a region"),
])
def test_url_rules(url, problem):
    assert problem in (s3_url_problem(url) or "")


def test_secrets_in_the_url_are_refused_and_http_needs_allowing():
    assert "access_key_env and secret_key_env" in url_problem("s3://b/p?endpoint=https://h&secret=x")
    assert "access_key_env and secret_key_env" in url_problem("s3://b/p?endpoint=https://h&token=x")
    plain = "s3://bucket/p?endpoint=http://store.local:9000"
    assert s3_url_problem(plain) is None  # the shape; whether it is allowed is the target's setting
    assert "allow_plain_http" in s3_url_problem(plain, allow_plain_http=False)
    with pytest.raises(StorageError, match="allow_plain_http"):
        open_storage(plain, access_key="a", secret_key="b")
    with pytest.raises(StorageError, match="access key"):
        open_storage("s3://bucket/p?endpoint=https://store.local")
