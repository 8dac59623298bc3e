"""``s3://bucket/prefix?endpoint=https://host[:port]&region=r`` targets: S3-compatible object storage (boto3).

Made for on-premises stores (MinIO, Ceph RGW, NetApp StorageGRID, Dell ECS ...) as well as AWS: path-style
addressing, the endpoint named in the URL, the access key pair from the configuration
(``access_key_env`` / ``secret_key_env``). An ``http://`` endpoint is refused unless the target allows it.

The folder model of the other targets maps onto S3 like this:

- a file is the object ``<prefix>/<name>``; the listing is the objects directly under the prefix
  (paginated), plus every multipart upload not completed yet, shown as a temporary name
  (``.<name>.<12 hex>.part``) that ``remove`` aborts: so a worker killed mid-upload leaves a
  temporary that the next run sweeps, as on a folder target;
- "write to a temporary name" is a multipart upload of the final key (parts of ``part_size``, up to
  ``parallel_parts`` in flight, each sent with its SHA-256, which the store checks against the bytes
  it received and refuses on a mismatch); "rename into place" is completing it
  with ``If-None-Match: *``, so an existing object is never replaced (a store that does not support
  the condition is asked with a HEAD just before instead);
- the digest is the object read back: S3 keeps no SHA-256 of a whole multipart object.

Object Lock: when the bucket has it, ``ObjectLock`` sets COMPLIANCE retention until ``retain_until`` and
the legal hold on the object's version, at creation and checked (or set) again once it is stored; a
retention is only ever extended. ``remove`` deletes the object's version itself (not a delete marker), so
on a locked object it fails: the store, too, refuses to delete an archive before its time.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

from connectors.errors import unforeseen
from connectors.urls import redact_url
from connectors.storage.base import (
    CHUNK, ObjectLock, ProgressFn, RemoteFile, StorageBackend, StorageError, check_name, is_temporary,
)

PART_SIZE = 16 << 20  # S3 allows 5 MiB to 5 GiB per part and 10,000 parts: 16 MiB parts reach 160 GB
PARALLEL_PARTS = 4  # parts in flight at once: 64 MiB of memory at most
MAX_PARTS = 10_000
PAGE_SIZE = 1000  # keys per listing request (S3's maximum)
LOCK_MODE = "COMPLIANCE"  # nobody, the store's root account included, deletes before the date
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_QUERY_KEYS = ("endpoint", "region")
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccountProblem"}


def s3_url_problem(url: str, *, allow_plain_http: bool | None = None) -> str | None:
    """Why ``url`` is not ``s3://bucket[/prefix]?endpoint=https://host[:port][&region=r]``, or None.
    ``allow_plain_http`` None: the shape only (an http endpoint passes); a bool: the target's setting."""
    parts = urlsplit(url)
    shown = redact_url(url)
    form = "write s3://bucket/prefix?endpoint=https://host[:port]&region=name"
    if parts.username or parts.password or parts.port:
        return f"{shown}: the bucket name stands alone after s3:// (no user or port); {form}"
    if not _BUCKET.match(parts.hostname or "") or ".." in (parts.hostname or ""):
        return f"{shown}: {parts.hostname or '(none)'!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-'); {form}"
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if any(s in (".", "..") or "\\" in s for s in segments):
        return f"{shown}: the prefix may not hold '.', '..' or a backslash"
    if parts.fragment:
        return f"{shown}: no #fragment in an s3 URL"
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [name for name, _ in query]
    if unknown := [name for name in names if name not in _QUERY_KEYS]:
        return f"{shown}: unknown query parameter {unknown[0]!r} (only endpoint and region)"
    if len(set(names)) != len(names):
        return f"{shown}: a query parameter is given twice"
    values = dict(query)
    endpoint = values.get("endpoint", "")
    if not endpoint:
        return f"{shown}: names no endpoint; {form}"
    target = urlsplit(endpoint)
    try:
        target.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{shown}: the endpoint has a bad port"
    if target.scheme not in ("https", "http") or not target.hostname or target.path not in ("", "/") \
            or target.query or target.username:
        return f"{shown}: the endpoint must be https://host[:port] (no path, user or query)"
    if target.scheme == "http" and allow_plain_http is False:
        return (f"{shown}: an http:// endpoint sends the archives and the request signatures in clear: use https://, "
                "or set allow_plain_http = true on a private storage network")
    if "region" in values and not re.fullmatch(r"[a-z0-9-]{1,40}", values["region"]):
        return f"{shown}: {values['region']!r} is not a region name"
    return None


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or str(response.get("ResponseMetadata", {})
                                                                 .get("HTTPStatusCode", ""))


def _token(upload_id: str) -> str:
    return hashlib.sha256(upload_id.encode("utf-8")).hexdigest()[:12]


def _as_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc) if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


class S3Storage(StorageBackend):
    def __init__(self, url: str, *, access_key: str | None, secret_key: str | None, allow_plain_http: bool = False,
                 ca_file: str | None = None, timeout: float = 30, part_size: int = PART_SIZE):
        self.url = redact_url(url)
        if problem := s3_url_problem(url, allow_plain_http=allow_plain_http):
            raise StorageError(problem)
        if not access_key or not secret_key:
            raise StorageError(f"{self.url}: needs an access key and a secret key (access_key_env, secret_key_env)")
        parts = urlsplit(url)
        self.bucket = parts.hostname or ""
        segments = [unquote(s) for s in parts.path.split("/") if s]
        self.prefix = "/".join(segments) + "/" if segments else ""
        values = dict(parse_qsl(parts.query))
        self.endpoint, self.region = values["endpoint"].rstrip("/"), values.get("region") or "us-east-1"
        self.part_size = part_size
        self.parallel_parts = PARALLEL_PARTS
        self.page_size = PAGE_SIZE
        self._secret = secret_key
        self._uploads: dict[str, dict[str, Any]] = {}  # our temporary names -> their multipart uploads
        self._next_lock: ObjectLock | None = None
        self._client = self._make_client(access_key, secret_key, ca_file, timeout)
        self.object_lock = self._check_bucket()

    # --- connection -----------------------------------------------------------------------------

    def _make_client(self, access_key: str, secret_key: str, ca_file: str | None, timeout: float):
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"},  # on-premises stores rarely have per-bucket DNS names
            signature_version="s3v4", connect_timeout=timeout, read_timeout=max(timeout, 60),
            retries={"max_attempts": 3, "mode": "standard"},
            # PDAS sends and checks its own SHA-256 per part; no CRC trailers an older store may refuse.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, config=config, verify=ca_file or True)

    def _fail(self, what: str, exc: Exception) -> StorageError:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, SSLError

        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, ClientError):
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message", "") or code
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _DENIED:
                return StorageError(f"{self.url}: {what}: access denied ({code}: {message})")
            if code in ("NoSuchBucket",):
                return StorageError(f"{self.url}: {what}: the bucket {self.bucket} does not exist")
            if code in ("EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "InsufficientStorage"):
                return StorageError(f"{self.url}: {what}: target is full ({code})")
            return StorageError(f"{self.url}: {what}: {code}: {message}",
                                retryable=status >= 500 or status in (408, 429) or code in ("SlowDown", "RequestTimeout"))
        if isinstance(exc, SSLError):
            return StorageError(f"{self.url}: {what}: TLS failed: {unforeseen(exc, secret=self._secret)}")
        if isinstance(exc, (EndpointConnectionError, BotoCoreError, OSError)):
            return StorageError(f"{self.url}: {what}: {unforeseen(exc, secret=self._secret)}", retryable=True)
        return StorageError(f"{self.url}: {what}: {unforeseen(exc, secret=self._secret)}", retryable=True)

    def _check_bucket(self) -> bool:
        """The bucket answers with these keys; whether it has Object Lock."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchBucket"):
                raise StorageError(f"{self.url}: the bucket {self.bucket} does not exist") from None
            raise self._fail("cannot open the bucket", exc) from None
        try:
            config = self._client.get_object_lock_configuration(Bucket=self.bucket)
        except Exception as exc:
            if _code(exc) in ("ObjectLockConfigurationNotFoundError", "404", "NotImplemented", "501"):
                return False
            raise self._fail("cannot read the bucket's Object Lock configuration", exc) from None
        return config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    # --- names ----------------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _pending(self) -> Iterator[tuple[str, str, str]]:
        """Multipart uploads under the prefix not completed yet: (temporary name, key, upload id)."""
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix,
                                       PaginationConfig={"PageSize": self.page_size}):
            for upload in page.get("Uploads", []) or []:
                name = upload["Key"][len(self.prefix):]
                if "/" not in name:
                    yield f".{name}.{_token(upload['UploadId'])}.part", upload["Key"], upload["UploadId"]

    def _find_upload(self, temp: str) -> tuple[str, str] | None:
        if temp in self._uploads:
            return self._uploads[temp]["key"], self._uploads[temp]["id"]
        return next(((key, upload_id) for name, key, upload_id in self._pending() if name == temp), None)

    # --- the interface --------------------------------------------------------------------------

    def list_files(self) -> list[RemoteFile]:
        found: list[RemoteFile] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/",
                                           PaginationConfig={"PageSize": self.page_size}):
                for item in page.get("Contents", []) or []:
                    name = item["Key"][len(self.prefix):]
                    if name:
                        found.append(RemoteFile(name, int(item["Size"])))
            for temp, key, upload_id in self._pending():
                found.append(RemoteFile(temp, self._parts_size(key, upload_id)))
        except Exception as exc:
            raise self._fail("cannot list", exc) from None
        return sorted(found, key=lambda f: f.name)

    def _parts_size(self, key: str, upload_id: str) -> int:
        size = 0
        paginator = self._client.get_paginator("list_parts")
        for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
            size += sum(int(part["Size"]) for part in page.get("Parts", []) or [])
        return size

    def stat(self, name: str) -> RemoteFile | None:
        try:
            if is_temporary(name):
                upload = self._find_upload(name)
                return RemoteFile(name, self._parts_size(*upload)) if upload else None
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except StorageError:
            raise
        except Exception as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise self._fail(f"cannot stat {name}", exc) from None
        return RemoteFile(name, int(head["ContentLength"]))

    def upload(self, name: str, chunks: Iterable[bytes], *, progress: ProgressFn | None = None,
               lock: ObjectLock | None = None) -> int:
        # The lock goes with the multipart upload's creation too, so a store that honours it there has
        # the object locked from its first moment; apply_lock (called by the base) checks it after.
        self._next_lock = lock
        try:
            return super().upload(name, chunks, progress=progress, lock=lock)
        finally:
            self._next_lock = None

    def _lock_arguments(self, lock: ObjectLock | None) -> dict[str, Any]:
        if lock is None or not self.object_lock:
            return {}
        arguments: dict[str, Any] = {"ObjectLockLegalHoldStatus": "ON" if lock.legal_hold else "OFF"}
        if lock.retain_until is not None:
            arguments.update(ObjectLockMode=LOCK_MODE, ObjectLockRetainUntilDate=_as_utc(lock.retain_until))
        return arguments

    def _write_temporary(self, temp: str, chunks: Iterable[bytes], progress: ProgressFn | None) -> int:
        key = self._key(temp[1:].rsplit(".", 2)[0])  # ".<name>.<hex>.part" -> <prefix>/<name>
        try:
            created = self._client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256",
                                                           **self._lock_arguments(self._next_lock))
        except Exception as exc:
            raise self._fail(f"cannot upload {temp}", exc) from None
        upload: dict[str, Any] = {"key": key, "id": created["UploadId"], "parts": []}
        self._uploads[temp] = upload
        written = 0
        pending = bytearray()
        # Up to ``parallel_parts`` parts travel at once (a store answers each part after writing it, so
        # one at a time leaves the link idle); the producer's chunks are read in this thread only.
        in_flight: list[Future] = []
        with ThreadPoolExecutor(max_workers=self.parallel_parts, thread_name_prefix="pdas-s3") as pool:
            try:
                for data in chunks:  # an error raised by the producer propagates as it is (upload() aborts)
                    pending += data
                    written += len(data)
                    while len(pending) >= self.part_size:
                        in_flight.append(self._submit_part(pool, upload, bytes(pending[:self.part_size]), temp))
                        del pending[:self.part_size]
                        while len(in_flight) >= self.parallel_parts:
                            in_flight.pop(0).result()
                    if progress:
                        progress(len(data))
                if pending or not upload["parts"]:
                    in_flight.append(self._submit_part(pool, upload, bytes(pending), temp))
                for future in in_flight:
                    future.result()
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        upload["parts"].sort(key=lambda part: part["PartNumber"])
        return written

    def _submit_part(self, pool: ThreadPoolExecutor, upload: dict[str, Any], data: bytes, temp: str) -> Future:
        number = len(upload["parts"]) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self.url}: {temp}: more than {MAX_PARTS} parts of {self.part_size} bytes")
        part: dict[str, Any] = {"PartNumber": number, "ChecksumSHA256": _b64(hashlib.sha256(data).digest())}
        upload["parts"].append(part)
        return pool.submit(self._send_part, upload, part, data, temp)

    def _send_part(self, upload: dict[str, Any], part: dict[str, Any], data: bytes, temp: str) -> None:
        number, checksum = part["PartNumber"], part["ChecksumSHA256"]
        try:
            sent = self._client.upload_part(Bucket=self.bucket, Key=upload["key"], UploadId=upload["id"],
                                            PartNumber=number, Body=data, ChecksumSHA256=checksum)
        except Exception as exc:
            if _code(exc) in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                raise StorageError(f"{self.url}: {temp}: part {number} arrived damaged (the store's SHA-256 "
                                   "differs from the one sent)", retryable=True) from None
            raise self._fail(f"cannot upload {temp}", exc) from None
        answered = sent.get("ChecksumSHA256")
        if answered and answered != checksum:
            raise StorageError(f"{self.url}: {temp}: the store reports another SHA-256 for part {number} than was "
                               "sent", retryable=True)
        part["ETag"] = sent["ETag"]

    def _rename_new(self, temp: str, name: str) -> None:
        upload = self._uploads.get(temp)
        if upload is None:
            raise StorageError(f"{self.url}: {temp}: no upload under way under this name")
        if self.stat(name) is not None:
            raise StorageError(f"{name} already exists on {self.url}", exists=True)
        arguments = {"Bucket": self.bucket, "Key": upload["key"], "UploadId": upload["id"],
                     "MultipartUpload": {"Parts": upload["parts"]}}
        try:
            try:
                done = self._client.complete_multipart_upload(IfNoneMatch="*", **arguments)
            except Exception as exc:
                if _code(exc) not in ("NotImplemented", "501"):
                    raise
                done = self._client.complete_multipart_upload(**arguments)  # checked by the HEAD above
        except Exception as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                raise StorageError(f"{name} already exists on {self.url}", exists=True) from None
            raise self._fail(f"cannot store {name}", exc) from None
        self._uploads.pop(temp, None)
        upload["version"] = done.get("VersionId")

    def read_chunks(self, name: str, chunk: int = CHUNK) -> Iterator[bytes]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
            try:
                yield from body.iter_chunks(chunk)
            finally:
                body.close()
        except Exception as exc:
            raise self._fail(f"cannot read {name}", exc) from None

    def remove(self, name: str) -> None:
        """Delete ``name`` for good: its current version, not hidden behind a delete marker (so a locked
        object is refused by the store); a temporary name aborts its multipart upload."""
        try:
            if is_temporary(name):
                upload = self._find_upload(name)
                if upload is not None:
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=upload[0], UploadId=upload[1])
                self._uploads.pop(name, None)
                return
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
            except Exception as exc:
                if _code(exc) in _NOT_FOUND:
                    return
                raise
            version = head.get("VersionId")
            extra = {"VersionId": version} if version and version != "null" else {}
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name), **extra)
        except Exception as exc:
            if _code(exc) in _DENIED and self.object_lock:
                raise StorageError(f"{self.url}: cannot remove {name}: the store refuses (Object Lock: retained "
                                   "or under legal hold)") from None
            raise self._fail(f"cannot remove {name}", exc) from None

    def lock_of(self, name: str) -> ObjectLock:
        """The retention the store holds for ``name`` now (an empty lock on a bucket without Object Lock)."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            raise self._fail(f"cannot read the retention of {name}", exc) from None
        until = head.get("ObjectLockRetainUntilDate")
        return ObjectLock(retain_until=_as_utc(until) if until else None,
                          legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON")

    def apply_lock(self, name: str, lock: ObjectLock) -> bool:
        """Retention until ``lock.retain_until`` (only ever extended) and the legal hold as ``lock`` says, on
        the object's current version; False on a bucket without Object Lock."""
        if not self.object_lock:
            return False
        current = self.lock_of(name)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
            version = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
            wanted = _as_utc(lock.retain_until) if lock.retain_until else None
            if wanted is not None and (current.retain_until is None or current.retain_until < wanted):
                self._client.put_object_retention(Bucket=self.bucket, Key=self._key(name), **version,
                                                  Retention={"Mode": LOCK_MODE, "RetainUntilDate": wanted})
            if current.legal_hold != lock.legal_hold:
                self._client.put_object_legal_hold(Bucket=self.bucket, Key=self._key(name), **version,
                                                   LegalHold={"Status": "ON" if lock.legal_hold else "OFF"})
        except Exception as exc:
            raise self._fail(f"cannot set the retention of {name}", exc) from None
        return True

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
