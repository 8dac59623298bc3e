"""Carrying out one restore, step by step, on its RestoreRecord (the order is in the package docstring)."""
from __future__ import annotations

import hashlib
import logging
import posixpath
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import zstandard
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from archiver.faults import checkpoint
from archiver.models import RestoreRecord
from inventory.models import Archive, ArchiveCopy, TpsPatient
from sites.models import Institution, StorageTarget
from archiver.packing.codecs import open_decompressed
from archiver.packing.inspect import compare_with_manifest, inspect_archive
from pinnacle.syntax import ParseError
from archiver.services.archive_index import SHA256_SUFFIX, SidecarError, manifest_patient_path, parse_sha256_sidecar
from archiver.services.restore.candidates import RESTORABLE, copy_order
from archiver.services.restore.checks import (
    CHUNK, make_dirs_once, placement_problems, record_content_verdict, record_read_back, rewrite_patient_path,
    staged_problems,
)
from archiver.services.restore.errors import ArchiveIntegrityError, RestoreError, RestoreRefused
from connectors.errors import SecretError
from connectors.storage import StorageError
from connectors.storage.encrypted import IdentityMissing, decrypt_to_file
from sites.connections import open_target, target_identities
from archiver.services.transfer import no_identity_reason
from connectors.tps.base import TpsError, TpsSource
from audit.actors import actor_name
from audit.events import Event
from audit.services import record_event
from core.jobs import UNFINISHED

log = logging.getLogger(__name__)

WORK_DIR = ".pdas-work"
SPACE_MARGIN = 16 << 20  # left free besides the patient on the TPS and the PDAS server


def _size(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def create_restore(*, archive: Archive, institution: Institution, actor, to_dir: Path | str | None = None,
                   from_target: StorageTarget | None = None) -> RestoreRecord:
    """The RestoreRecord of a restore about to run (``queued``). ``to_dir`` None: the TPS restore group;
    ``from_target``: read that target's copy only (a restore drill)."""
    if archive.institution_id != institution.pk:
        raise RestoreRefused(f"archive {archive.name} belongs to another institution than {institution.code}")
    destination = f"tps:{institution.effective_restore_group}"
    if to_dir is not None:
        destination = str(Path(to_dir).expanduser().absolute())
    return RestoreRecord.objects.create(institution=institution, archive=archive, requested_by=actor_name(actor),
                                        destination=destination, reason="queued", from_target=from_target)


def run_restore(*, archive: Archive, institution: Institution, actor, to_dir: Path | str | None = None
                ) -> RestoreRecord:
    """Restore one archive now (the steps are in the package docstring); raises ``RestoreError`` unless done."""
    record = create_restore(archive=archive, institution=institution, actor=actor, to_dir=to_dir)
    return execute_restore(record_id=record.pk, raise_errors=True)


def execute_restore(*, record_id: int, raise_errors: bool = False) -> RestoreRecord:
    """Carry out a prepared restore. Its outcome is on the record (and in the audit log); with
    ``raise_errors`` a restore that is not done raises its ``RestoreError`` too."""
    record = RestoreRecord.objects.select_related("archive", "institution").get(pk=record_id)
    if record.finished:
        return record  # already decided: a redelivered task does nothing
    record.mark_running()
    try:
        _Restore(record).run()
    except RestoreError as exc:
        status = RestoreRecord.Status.REFUSED if isinstance(exc, (RestoreRefused, ArchiveIntegrityError)) \
            else RestoreRecord.Status.FAILED
        _finish(record, status, str(exc))
        if raise_errors:
            exc.record = record
            raise
    except (TpsError, StorageError, OSError) as exc:
        _finish(record, RestoreRecord.Status.FAILED, str(exc) or type(exc).__name__)
        if raise_errors:
            raise RestoreError(record.reason, record=record) from None
    except Exception as exc:  # a bug must not leave the record "running" forever
        log.exception("restore %s failed", record.pk)
        _finish(record, RestoreRecord.Status.FAILED, f"{type(exc).__name__}: {exc}")
        if raise_errors:
            raise RestoreError(record.reason, record=record) from None
    return record


def _finish(record: RestoreRecord, status: str, reason: str) -> None:
    record.status, record.reason, record.finished_at = status, reason[:4000], timezone.now()
    record.error = "" if status == RestoreRecord.Status.DONE else record.reason
    archive = record.archive
    outcome = {RestoreRecord.Status.DONE: "ok", RestoreRecord.Status.REFUSED: "denied"}.get(status, "failed")
    with transaction.atomic():  # the restore's outcome and its audit row commit together
        record.save(update_fields=["status", "reason", "error", "finished_at"])
        record_event(actor=record.requested_by, event=Event.RESTORE, institution=record.institution.code,
                     mrns=[archive.mrn], obj=record, outcome=outcome,
                     detail={"archive": archive.name, "destination": record.destination, "tps_path": record.tps_path,
                             "files": record.files, "bytes": record.bytes, "status": status, "reason": reason[:1000]})


@dataclass
class _Destination:
    source: TpsSource
    rel: str  # where the patient goes, relative to the source's root
    institution_dir: str
    institution_name: str
    group: str | None  # the TPS group; None for a --to folder
    where: str  # for messages


@dataclass
class _Restore:
    record: RestoreRecord
    last_saved: float = 0.0
    problems: list[str] = field(default_factory=list)  # worth noting on a restore that succeeded
    groups: list = field(default_factory=list)  # the TPS groups as listed for this restore
    moved: bool = False  # the patient was renamed into place (and not taken out again)

    @property
    def archive(self) -> Archive:
        return self.record.archive

    def step(self, text: str, *, force: bool = True, **fields) -> None:
        """Progress on the record (what the page polls): ``reason`` says what runs while ``running``."""
        for key, value in fields.items():
            setattr(self.record, key, value)
        now = time.monotonic()
        if force or now - self.last_saved > 0.5:
            self.record.reason = text
            RestoreRecord.objects.filter(pk=self.record.pk).update(reason=text, heartbeat_at=timezone.now(),
                                                                   **fields)
            self.last_saved = now

    def run(self) -> None:
        archive, record = self.archive, self.record
        patient_path = manifest_patient_path(archive.manifest)
        if not patient_path:
            raise ArchiveIntegrityError(f"the manifest of {archive.name} names no Institution_<I>/Mount_<M>/"
                                        "Patient_<P> folder; not restored")
        with self._open_destination() as source:
            dest = self._destination(source, patient_path)
            self.step(f"checking {dest.where}", tps_path=dest.rel)
            finished = self._settle_dead_attempts(dest, patient_path)
            if finished is not None:
                _finish(record, RestoreRecord.Status.DONE,
                        f"restored to {dest.where} by restore #{finished.pk}, whose worker stopped after moving the "
                        "patient into place; finished now")
                return
            self._refuse_existing(dest, patient_path)
            downloads = Path(settings.DATA_DIR) / "restore"
            downloads.mkdir(parents=True, exist_ok=True)
            self._check_space(dest, downloads)
            with tempfile.TemporaryDirectory(prefix=f"restore-{record.pk}-", dir=downloads) as scratch:
                path, copy = self._fetch(Path(scratch))
                listing = self._validate(path, patient_path)
                staging = staging_folder(record)
                try:
                    self._stage(dest.source, staging, path, listing, patient_path)
                    self._move_into_place(dest, staging, patient_path)
                except BaseException:
                    if not self.moved:  # moved: the staging folder says so to the rerun that finishes the restore
                        self._remove_staging(dest.source, staging)
                    raise
            note = f"; {'; '.join(self.problems)}" if self.problems else ""
            record.status = RestoreRecord.Status.DONE
            _finish(record, RestoreRecord.Status.DONE, f"restored from {copy.target.name} to {dest.where}{note}")
            self._remove_staging(dest.source, staging)  # after the record: until then it proves the move

    # --- destination ---

    def _open_destination(self):
        from sites.connections import open_institution_tps
        from connectors.tps.local import LocalTpsSource

        destination = self.record.destination
        if destination.startswith("tps:"):
            try:
                return open_institution_tps(self.record.institution)
            except TpsError as exc:
                raise RestoreError(f"the TPS of {self.record.institution.code} cannot be opened: {exc}") from None
        folder = Path(destination)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RestoreError(f"--to {folder}: cannot create the folder: {exc.strerror or exc}") from None
        return LocalTpsSource(folder)

    def _destination(self, source: TpsSource, patient_path: str) -> _Destination:
        from pinnacle.reader import list_groups, read_institution_headers

        patient_dir = patient_path.rsplit("/", 1)[1]
        if not self.record.destination.startswith("tps:"):
            institution_dir = patient_path.split("/", 1)[0]
            return _Destination(source=source, rel=patient_path, institution_dir=institution_dir,
                                institution_name=self._archived_group_name(), group=None,
                                where=f"{self.record.destination}/{patient_path}")
        group = self.record.destination[len("tps:"):]
        try:
            groups = list_groups(source, read_institution_headers(source))
        except TpsError as exc:
            raise RestoreError(f"the TPS groups cannot be read: {exc}") from None
        self.groups = groups
        matching = [g for g in groups if g.name == group] or [g for g in groups if g.dir_name == group]
        if not matching:
            raise RestoreError(f"restore group {group!r} of {self.record.institution.code} is not on the TPS "
                               "(no Institution_<n> folder has that name in the Institution file)")
        if len(matching) > 1:
            raise RestoreError(f"restore group {group!r} names several folders on the TPS: "
                               f"{', '.join(g.dir_name for g in matching)}; set restore_group to one of them")
        institution_dir = matching[0].dir_name
        rel = f"{institution_dir}/Mount_0/{patient_dir}"
        return _Destination(source=source, rel=rel, institution_dir=institution_dir, institution_name=group,
                            group=group, where=f"TPS group {group} ({rel})")

    def _archived_group_name(self) -> str:
        return str(self.archive.manifest.get("group") or self.archive.group or "")

    def _refuse_existing(self, dest: _Destination, patient_path: str) -> None:
        if dest.source.stat(dest.rel) is not None:
            raise RestoreRefused(f"{dest.where} already exists: a patient folder is never overwritten; "
                                 "nothing was written")
        if dest.group is None:
            return
        # Pinnacle's patient ids are unique in the whole tree: a second Patient_<P> would confuse it.
        patient_dir = dest.rel.rsplit("/", 1)[1]
        for group in self.groups:
            for path in group.patient_paths:
                if path.rsplit("/", 1)[1] == patient_dir:
                    raise RestoreRefused(f"{patient_dir} is already on the TPS at {path} (group {group.name}); "
                                         "a patient folder is never overwritten; nothing was written")

    def _check_space(self, dest: _Destination, downloads: Path) -> None:
        """Refuse before writing anything when the download or the unpacked patient cannot fit, rather than
        fill the TPS disk half-way (Pinnacle itself then stops saving plans)."""
        archive = self.archive
        packed = archive.size or 0
        unpacked = archive.raw_bytes or sum(int(f.get("size") or 0) for f in archive.manifest.get("files", []))
        free = shutil.disk_usage(downloads).free
        if free < packed + SPACE_MARGIN:
            raise RestoreError(f"not enough free space for the download in {downloads}: {archive.name} needs "
                               f"{_size(packed + SPACE_MARGIN)}, {_size(free)} free; nothing was written")
        free_tps = dest.source.free_bytes("")
        if free_tps is None:
            self.problems.append("the free space on the TPS could not be checked")
        elif free_tps < unpacked + SPACE_MARGIN:
            raise RestoreError(f"not enough free space at {dest.where}: the patient unpacks to "
                               f"{_size(unpacked + SPACE_MARGIN)} with room to spare, {_size(free_tps)} free; "
                               "nothing was written")

    # --- fetching and validating ---

    def _fetch(self, scratch: Path) -> tuple[Path, ArchiveCopy]:
        archive = self.archive
        copies = archive.copies.filter(status__in=RESTORABLE, target__enabled=True).select_related("target")
        if self.record.from_target_id is not None:  # a drill: that target's copy or nothing
            copies = copies.filter(target_id=self.record.from_target_id)
        copies = sorted(copies, key=copy_order)
        if not copies:
            raise RestoreError(f"{archive.name} has no usable copy on an enabled storage target")
        problems, damaged = [], False
        for copy in copies:
            target = copy.target
            self.step(f"downloading from {target.name}", bytes=0)
            if copy.encrypted:
                try:
                    identities = target_identities(target)
                except IdentityMissing:
                    problems.append(no_identity_reason(target))
                    continue
                except SecretError as exc:
                    problems.append(f"{target.name}: {exc}")
                    continue
            try:
                with open_target(target) as backend:
                    if copy.encrypted:
                        path, size, digest = self._decrypt(backend, copy, identities, scratch)
                    elif backend.stat(archive.name + SHA256_SUFFIX) is None:
                        raise SidecarError(f"{target.name}: {archive.name}.sha256 is missing")
                    else:
                        sidecar = parse_sha256_sidecar(backend.read_bytes(archive.name + SHA256_SUFFIX),
                                                       name=archive.name,
                                                       where=f"{target.name}: {archive.name}.sha256")
                        if sidecar != archive.checksum:
                            raise SidecarError(f"{target.name}: {archive.name}.sha256 differs from the recorded "
                                               "digest")
                        path, size, digest = self._download(backend, scratch)
            except SidecarError as exc:
                problems.append(str(exc))
                damaged = True
                continue
            except StorageError as exc:
                problems.append(f"{target.name}: {exc}")
                continue
            mismatch = []
            if archive.size is not None and size != archive.size:
                mismatch.append(f"{size} bytes, the record says {archive.size}")
            if digest != archive.checksum:
                mismatch.append("SHA-256 differs from the record and the .sha256 sidecar")
            record_read_back(copy, size=size, digest=digest, problems=mismatch)
            if mismatch:
                problems.append(f"{target.name}: {'; '.join(mismatch)}")
                damaged = True
                path.unlink(missing_ok=True)
                continue
            return path, copy
        error = ArchiveIntegrityError if damaged else RestoreError
        raise error(f"no copy of {archive.name} could be used, nothing was written: {'; '.join(problems)}")

    def _download(self, backend, scratch: Path) -> tuple[Path, int, str]:
        path = scratch / "archive"
        hasher, size = hashlib.sha256(), 0
        path.unlink(missing_ok=True)
        try:
            with open(path, "xb") as out:
                for data in backend.read_chunks(self.archive.name):
                    out.write(data)
                    hasher.update(data)
                    size += len(data)
                    self.step(f"downloading from {backend.url}", force=False, bytes=size)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise RestoreError(f"cannot keep the download in {scratch.parent}: {exc.strerror or exc}") from None
        return path, size, hasher.hexdigest()

    def _decrypt(self, backend, copy: ArchiveCopy, identities: list, scratch: Path) -> tuple[Path, int, str]:
        """The archive of an encrypted copy, decrypted into the scratch folder as it is read: every age chunk
        is authenticated, and the file is kept only once the whole stream did and its SHA-256 is the one
        the object is named after (``decrypt_to_file``). The checks of a plain download then apply."""
        path = scratch / "archive"
        path.unlink(missing_ok=True)
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self.step(f"downloading and decrypting from {copy.target.name}", force=False, bytes=done)

        try:
            digest = decrypt_to_file(backend, copy.encrypted_names(), identities, path, progress=progress)
        except OSError as exc:
            raise RestoreError(f"cannot keep the download in {scratch.parent}: {exc.strerror or exc}") from None
        except StorageError as exc:
            if exc.retryable:
                raise
            raise SidecarError(f"{copy.target.name}: {exc}") from None  # damaged: not this copy
        return path, path.stat().st_size, digest

    def _validate(self, path: Path, patient_path: str):
        archive = self.archive
        self.step("checking every member against the manifest")
        with open(path, "rb") as raw:
            listing = inspect_archive(raw, archive.codec)
        problems = list(listing.problems)
        if listing.manifest and listing.manifest != archive.manifest:
            problems.append("PDAS-MANIFEST.json in the archive differs from the manifest on record")
        problems += compare_with_manifest(listing)
        problems += placement_problems(listing, archive.manifest, patient_path)
        with transaction.atomic():
            record_content_verdict(archive, problems)
            if problems:
                record_event(actor=self.record.requested_by, event=Event.ARCHIVE_VERIFY,
                             institution=self.record.institution.code, mrns=[archive.mrn], obj=archive,
                             outcome="failed", detail={"problems": problems[:20], "during": "restore"})
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ArchiveIntegrityError(f"{archive.name} refused, nothing was written: {problems[0]}{more}")
        return listing

    # --- staging and moving ---

    def _stage(self, source: TpsSource, staging: str, path: Path, listing, patient_path: str) -> None:
        if source.stat(staging) is not None:
            source.remove_tree(staging)  # left by an attempt that died: its content is not trusted
        source.make_dirs(staging)
        expected = {m.path: m.size for m in listing.members if m.kind == "file"}
        host_dir = source.host_path(staging)
        made: set[str] = set()
        files = done = 0
        self.step("extracting into the staging folder", bytes=0, files=0)
        with open(path, "rb") as raw:
            try:
                with tarfile.open(fileobj=open_decompressed(self.archive.codec, raw), mode="r|") as tar:
                    for index, member in enumerate(tar):
                        if index < 2:
                            continue  # the Institution header and the manifest: read, not restored
                        try:
                            member = tarfile.data_filter(member, host_dir)
                        except tarfile.FilterError as exc:
                            raise ArchiveIntegrityError(f"{self.archive.name}: member {member.name!r} refused by "
                                                        f"the data filter: {exc}") from None
                        name = posixpath.normpath(member.name)
                        if member.isdir():
                            make_dirs_once(source, f"{staging}/{name}", made)
                            continue
                        if expected.get(name) != member.size:
                            raise ArchiveIntegrityError(f"{self.archive.name}: {name} changed since it was checked")
                        make_dirs_once(source, posixpath.dirname(f"{staging}/{name}"), made)
                        handle = tar.extractfile(member)
                        done += source.write_stream_atomic(f"{staging}/{name}", iter(lambda: handle.read(CHUNK), b""),
                                                           mtime=member.mtime)
                        files += 1
                        self.step(f"extracting: {files} of {len(expected)} files", force=False, files=files,
                                  bytes=done)
                        checkpoint("restore_staging")
            except (tarfile.TarError, EOFError, zlib.error, zstandard.ZstdError) as exc:
                raise ArchiveIntegrityError(f"{self.archive.name} cannot be read while extracting: {exc}") from None
        self.step("hashing the staged files", files=files, bytes=done)
        mismatch = staged_problems(source, staging, self.archive.manifest, patient_path)
        if mismatch:
            raise RestoreError(f"the staged copy differs from the manifest ({mismatch[0]}); nothing was restored")

    def _move_into_place(self, dest: _Destination, staging: str, patient_path: str) -> None:
        source, staged = dest.source, f"{staging}/{patient_path}"
        if dest.rel != patient_path:
            rewrite_patient_path(source, f"{staged}/Patient", dest.rel)
        self.step(f"moving into place: {dest.where}")
        source.make_dirs(posixpath.dirname(dest.rel))
        if source.stat(dest.rel) is not None:
            raise RestoreRefused(f"{dest.where} appeared while restoring: not overwritten; nothing was restored")
        source.rename(staged, dest.rel)
        self.moved = True
        checkpoint("restore_moved")
        try:
            self._list_in_institution_file(dest)
        except (TpsError, ParseError) as exc:
            source.rename(dest.rel, staged)  # all or nothing: take the patient out again
            self.moved = False
            raise RestoreError(f"the Institution file cannot be updated ({exc}); the restore was undone") from None
        if dest.group is not None:
            self._mark_restored(source, dest)

    def _list_in_institution_file(self, dest: _Destination) -> None:
        """The patient in place gets its PatientLite in the ``Institution`` file (replaced if there)."""
        from archiver.packing.manifest import patient_lite
        from pinnacle.institution_file import add_patient_lite
        from pinnacle.reader import read_patient

        info = read_patient(dest.source, dest.rel, group=dest.group or dest.institution_name)
        add_patient_lite(dest.source, institution_dir=dest.institution_dir, institution_name=dest.institution_name,
                         lite=patient_lite(info))

    def _settle_dead_attempts(self, dest: _Destination, patient_path: str) -> RestoreRecord | None:
        """Settle what dead attempts at restoring this archive to this place left on the destination; the
        attempt whose move into place is finished here, if any.

        Dead: this record's own earlier attempt (a redelivered task), and the other restores of the archive
        to the same place that finished or are stale (``JobRow.objects.stale``); one still running is left
        alone. A staging folder whose patient folder is gone while the patient is in place means the
        attempt moved it there and stopped before its record said done: the patient is listed and marked
        now (both can be done again), so the restore ends as the user asked. Every such staging folder, and
        the attempt's download on this server, is then removed."""
        record = self.record
        same = RestoreRecord.objects.filter(archive=record.archive, destination=record.destination, tps_path=dest.rel)
        dead = [record, *same.exclude(pk=record.pk).exclude(status__in=UNFINISHED),
                *same.exclude(pk=record.pk).stale()]
        finished = None
        for attempt in dead:
            for download in (Path(settings.DATA_DIR) / "restore").glob(f"restore-{attempt.pk}-*"):
                shutil.rmtree(download, ignore_errors=True)
            staging = staging_folder(attempt)
            if dest.source.stat(staging) is None:
                continue
            moved = (dest.source.stat(f"{staging}/{patient_path}") is None and dest.source.stat(dest.rel) is not None
                     and attempt.status != RestoreRecord.Status.DONE)
            if moved and finished is None:
                self.step(f"finishing restore #{attempt.pk}: listing {dest.where}", files=attempt.files,
                          bytes=attempt.bytes)
                try:
                    self._list_in_institution_file(dest)
                except (TpsError, ParseError) as exc:
                    raise RestoreError(f"{dest.where} was put in place by restore #{attempt.pk}, and the "
                                       f"Institution file cannot be updated ({exc})") from None
                if dest.group is not None:
                    self._mark_restored(dest.source, dest)
                finished = attempt
            self._remove_staging(dest.source, staging)
        return finished

    def _mark_restored(self, source: TpsSource, dest: _Destination) -> None:
        from inventory.services.tps_sync import sync_patient

        row = sync_patient(institution=self.record.institution, source=source, tps_path=dest.rel, group=dest.group)
        TpsPatient.objects.filter(pk=row.pk).update(restored_from=self.archive, restored_fingerprint=row.fingerprint)

    def _remove_staging(self, source: TpsSource, staging: str) -> None:
        try:
            if source.stat(staging) is not None:
                source.remove_tree(staging)
        except TpsError as exc:
            log.warning("restore %s: the staging folder %s could not be removed: %s", self.record.pk, staging, exc)
            self.problems.append(f"the staging folder {staging} could not be removed: {exc}")


def staging_folder(record: RestoreRecord) -> str:
    """Where a restore stages the patient, under the destination root. It stays until the record is decided,
    or until the attempt failed before the patient moved into place."""
    return f"{WORK_DIR}/restore-{record.pk}"
