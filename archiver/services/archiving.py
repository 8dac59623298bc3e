"""Archiving a pending group: pack each patient, copy to every target, verify, then quarantine.

The order of a patient's steps is the promise: originals move to the quarantine only after every
enabled target holds a copy whose digest was measured *there* and matched, the archive itself was
read back against its manifest, and the patient's files are unchanged since packing. Any doubt
keeps the originals. Every step can be repeated: a rerun after a crash reuses what was finished
(the Archive row, its packed file, copies already verified) and completes the rest.
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import os
import socket
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from archiver.models import (
    Archive, ArchivedPlan, ArchiveCopy, ArchiveRun, Institution, PatientArchiveTask, StorageTarget, TpsPatient,
)
from archiver.naming import archive_name, mrn_part, parse_archive_name
from archiver.packing.inspect import compare_with_manifest, inspect_archive
from archiver.faults import checkpoint
from archiver.services.claims import claim_patient, release_claim, renew_claim
from archiver.services.quarantine import quarantine_patient
from archiver.services.transfer import store_copy, verify_copy
from archiver.storage import StorageError, open_target
from archiver.tps.base import TpsError
from audit.services import record_event

log = logging.getLogger(__name__)

Result = PatientArchiveTask.Result
Step = PatientArchiveTask.Step
WORK_DIR = ".pdas-work"


class TransientArchiveError(Exception):
    """A network or host problem: the task is retried with backoff. Never raised for bad data."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- runs ---------------------------------------------------------------------------------------


def archivable_patients(*, institution: Institution):
    """Patients of the pending group that the archiver takes: those the latest curation allows."""
    from archiver.selectors import archive_candidates

    return archive_candidates(institution=institution)


def prepare_archive_run(*, institution: Institution, actor) -> ArchiveRun:
    """Finish what crashed runs left, re-read the TPS (incrementally) and curate the pending group,
    then create the run over what curation allows now."""
    from curation.services.curate import curate_institution

    recover_interrupted_work(institution=institution, actor=actor)
    curate_institution(institution=institution, actor=actor, refresh_tps=True)  # syncs first
    return create_archive_run(institution=institution, actor=actor)


def recover_interrupted_work(*, institution: Institution, actor) -> int:
    """After a crash: finish removals that moved a folder but never recorded it, and close the tasks
    of dead workers (started, no live claim) so their runs can finish. Returns the tasks closed."""
    from archiver.services.quarantine import recover_interrupted_moves
    from archiver.tps import open_institution_tps

    with open_institution_tps(institution) as tps:
        recover_interrupted_moves(institution=institution, source=tps, actor=actor)
    now = timezone.now()
    dead = (PatientArchiveTask.objects.filter(run__institution=institution, result=Result.PENDING,
                                              started_at__isnull=False)
            .exclude(patient__claimed_by__gt="", patient__claim_expires__gt=now))
    closed = 0
    for task in dead.select_related("run", "patient", "archive"):
        removed = task.archive_id and not task.patient.present and task.archive.quarantined.filter(
            moved_at__isnull=False).exists()
        if removed:
            _finish(task, Result.PASS, "the worker stopped during removal; recovery finished it")
        else:
            _finish(task, Result.ERROR, "interrupted: the worker stopped mid-way; a later run resumes the patient")
        finish_run(run=task.run)
        closed += 1
    return closed


@transaction.atomic
def create_archive_run(*, institution: Institution, actor, patient_ids: list[int] | None = None) -> ArchiveRun:
    """A run with one task per archivable patient (``patient_ids`` narrows it)."""
    run = ArchiveRun.objects.create(institution=institution, started_by=_actor(actor))
    patients = archivable_patients(institution=institution)
    if patient_ids is not None:
        patients = patients.filter(pk__in=patient_ids)
    PatientArchiveTask.objects.bulk_create(
        [PatientArchiveTask(run=run, patient=p, bytes_total=p.total_bytes) for p in patients]
    )
    record_event(actor=actor, event="archive.run", institution=institution.code, obj=run,
                 mrns=[p.mrn for p in patients], detail={"patients": len(patients)})
    return run


def start_run(*, run: ArchiveRun) -> None:
    ArchiveRun.objects.filter(pk=run.pk, started_at__isnull=True).update(
        started_at=timezone.now(), status=ArchiveRun.Status.RUNNING
    )


def finish_run(*, run: ArchiveRun) -> ArchiveRun:
    """Close the run once no task is still pending; idempotent."""
    if run.tasks.filter(result=Result.PENDING).exists():
        return run
    ArchiveRun.objects.filter(pk=run.pk, finished_at__isnull=True).update(
        finished_at=timezone.now(), status=ArchiveRun.Status.DONE
    )
    run.refresh_from_db()
    return run


def enqueue_run(*, run: ArchiveRun) -> None:
    """Queue one Celery task per patient, after the run's rows are committed."""
    from archiver.tasks import archive_patient_task

    start_run(run=run)
    task_ids = list(run.tasks.filter(result=Result.PENDING).values_list("pk", flat=True))
    # An institution may send its patients to a worker running on its TPS host, where packing reads
    # local disks (Institution.worker_queue); otherwise Celery's default queue.
    queue = run.institution.worker_queue or None
    transaction.on_commit(lambda: [archive_patient_task.apply_async(args=[task_id], queue=queue)
                                   for task_id in task_ids])


def run_in_process(*, run: ArchiveRun, attempts: int = 3, backoff_seconds: float | None = None,
                   workers: int | None = None) -> ArchiveRun:
    """The embedded mode: archive the run's patients in this process, ``workers`` at a time
    (default ``PDAS_ARCHIVE_WORKERS``: one per core, so one patient compresses while another uploads)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings
    from django.db import connection

    if backoff_seconds is None:
        backoff_seconds = settings.PDAS_RETRY_BACKOFF_SECONDS
    workers = workers or settings.PDAS_ARCHIVE_WORKERS
    start_run(run=run)
    task_ids = list(run.tasks.filter(result=Result.PENDING).values_list("pk", flat=True))
    if workers <= 1:
        for task_id in task_ids:
            _archive_with_retries(task_id, attempts, backoff_seconds)
        return finish_run(run=run)

    def in_thread(task_id: int) -> None:
        try:
            _archive_with_retries(task_id, attempts, backoff_seconds)
        finally:
            connection.close()  # each thread has its own database connection

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pdas-archive") as pool:
        for future in [pool.submit(in_thread, task_id) for task_id in task_ids]:
            future.result()
    return finish_run(run=run)


def _archive_with_retries(task_id: int, attempts: int, backoff_seconds: float) -> None:
    import time

    for attempt in range(1, attempts + 1):
        try:
            archive_patient(task_id=task_id, worker=f"{worker_name()}:{task_id}")
            return
        except TransientArchiveError as exc:
            if attempt == attempts:
                task = PatientArchiveTask.objects.get(pk=task_id)
                _finish(task, Result.ERROR, f"gave up after {attempts} attempts: {exc}; originals kept")
            else:
                time.sleep(backoff_seconds * attempt)


def _actor(actor) -> str:
    if actor is None:
        return "scheduler"
    return actor if isinstance(actor, str) else actor.get_username()


# --- one patient ----------------------------------------------------------------------------------


class _Progress:
    """Counts bytes for the run page; writes them at most twice a second (a row update per 1 MiB
    chunk would cost more than the work it reports)."""

    def __init__(self, task_id: int, interval: float = 0.5):
        import time

        self._clock = time.monotonic
        self._task_id, self._interval = task_id, interval
        self._pending = 0
        self._last = self._clock()

    def __call__(self, n: int) -> None:
        self._pending += n
        if self._clock() - self._last >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            PatientArchiveTask.objects.filter(pk=self._task_id).update(bytes_done=F("bytes_done") + self._pending)
            self._pending = 0
        self._last = self._clock()


@dataclass
class _Context:
    task: PatientArchiveTask
    patient: TpsPatient
    institution: Institution
    worker: str


def _set(task: PatientArchiveTask, **fields) -> None:
    for key, value in fields.items():
        setattr(task, key, value)
    task.save(update_fields=list(fields))


def _finish(task: PatientArchiveTask, result: str, reason: str = "") -> PatientArchiveTask:
    fields = {"result": result, "reason": reason[:2000], "finished_at": timezone.now(),
              "step": Step.DONE if result == Result.PASS else task.step}
    if result == Result.PASS:
        fields["bytes_done"] = task.bytes_total  # the bar ends full; partial counts are a step's own
    _set(task, **fields)
    return task


def archive_patient(*, task_id: int, worker: str | None = None) -> PatientArchiveTask:
    """Run (or resume) one patient's archiving. Raises ``TransientArchiveError`` when a retry may help."""
    worker = worker or worker_name()
    task = PatientArchiveTask.objects.select_related("patient__institution", "run").get(pk=task_id)
    if task.result != Result.PENDING:
        return task  # already decided: a redelivered message does nothing
    patient = task.patient
    if not claim_patient(patient_id=patient.pk, worker=worker):
        return _finish(task, Result.ERROR, "another worker is archiving this patient now; originals kept")
    PatientArchiveTask.objects.filter(pk=task.pk).update(attempts=F("attempts") + 1, started_at=timezone.now(),
                                                         claimed_by=worker, claimed_at=timezone.now())
    task.refresh_from_db()
    ctx = _Context(task=task, patient=patient, institution=patient.institution, worker=worker)
    try:
        return _archive_claimed(ctx)
    except (TpsError, StorageError) as exc:
        if getattr(exc, "retryable", False):
            _set(task, reason=f"retrying: {exc}"[:2000])
            raise TransientArchiveError(str(exc)) from exc
        return _finish(task, Result.ERROR, f"{exc}; originals kept")
    finally:
        release_claim(patient_id=patient.pk, worker=worker)


def _archive_claimed(ctx: _Context) -> PatientArchiveTask:
    from archiver.pinnacle.reader import read_institution_headers, read_patient
    from archiver.tps import open_institution_tps

    task, patient, institution = ctx.task, ctx.patient, ctx.institution
    with open_institution_tps(institution) as tps:
        if tps.stat(patient.tps_path) is None:
            finished = _finish_interrupted_removal(ctx, tps)
            if finished is not None:
                return finished
            return _finish(task, Result.ERROR, "patient folder is no longer in the TPS; nothing archived")
        info = read_patient(tps, patient.tps_path, group=patient.group)
        if info.errors:
            return _finish(task, Result.ERROR, "unreadable: " + "; ".join(info.errors))
        if not info.plans and not _image_only_acknowledged(patient, info.fingerprint):
            return _finish(task, Result.ERROR, "no plans (image-only patient): not archived automatically")

        _set(task, step=Step.PACKING, bytes_total=info.total_bytes)
        archive, packed = _packed_archive(ctx, tps, info, read_institution_headers)
        _set(task, archive=archive)
        _renew(ctx)

        targets = list(institution.storage_targets.filter(enabled=True))
        if not targets:
            return _finish(task, Result.ERROR, "no enabled storage target; originals kept")
        _set(task, step=Step.UPLOADING, bytes_done=0)
        for target in targets:
            _copy_to_target(ctx, archive, packed, target, share=1 / len(targets))
            _renew(ctx)

        _set(task, step=Step.VERIFYING)
        problems = _verify_archive(archive, packed, info, patient)
        copies = {c.target_id: c for c in archive.copies.all()}
        for target in targets:
            copy = copies.get(target.pk)
            if copy is None or copy.status != ArchiveCopy.Status.VERIFIED:
                problems.append(f"copy on {target.name} is not verified")
        if problems:
            Archive.objects.filter(pk=archive.pk).update(status=Archive.Status.FAILED)
            record_event(actor=ctx.worker, event="archive.verify", institution=institution.code, mrns=[patient.mrn],
                         obj=archive, outcome="failed", detail={"problems": problems[:20]})
            return _finish(task, Result.ERROR, "; ".join(problems) + "; originals kept")
        if archive.status != Archive.Status.VERIFIED:
            Archive.objects.filter(pk=archive.pk).update(status=Archive.Status.VERIFIED, verified_at=timezone.now())
            archive.refresh_from_db()
        record_event(actor=ctx.worker, event="archive.verify", institution=institution.code, mrns=[patient.mrn],
                     obj=archive, detail={"targets": [t.name for t in targets], "sha256": archive.checksum})
        _renew(ctx)

        _set(task, step=Step.REMOVING)
        if tps.stat(patient.tps_path) is None:
            return _finish(task, Result.WARNING, "archived, but the patient left the pending group before removal")
        from archiver.pinnacle.reader import fingerprint_files, scan_patient_files

        files, _junk, _links = scan_patient_files(tps, patient.tps_path)
        if fingerprint_files(files) != archive.source_fingerprint:
            return _finish(task, Result.WARNING, "archived, but the patient's files changed during archiving; "
                                                 "originals kept (the next run archives the new state)")
        quarantine_patient(institution=institution, source=tps, patient=patient, archive=archive,
                           institution_dir=info.institution_dir, actor=ctx.worker)
        _discard_quietly(packed)
    return _finish(task, Result.PASS)


def _discard_quietly(packed) -> None:
    """Remove the packed file from the work folder; a failure leaves litter, never an error."""
    if packed is None:
        return
    try:
        packed.discard()
    except (OSError, TpsError) as exc:
        log.warning("could not remove packed file %s: %s", packed.name, exc)


def _image_only_acknowledged(patient: TpsPatient, fingerprint: str) -> bool:
    """A physicist reviewed this image-only patient, exactly as it is now, and chose to archive it."""
    from curation.models import Category
    from curation.selectors import acknowledged

    return acknowledged(patient=patient, category=Category.IMAGE_ONLY, fingerprint=fingerprint)


def _renew(ctx: _Context) -> None:
    if not renew_claim(patient_id=ctx.patient.pk, worker=ctx.worker):
        raise TpsError("the claim on this patient ran out and was taken by another worker", retryable=False)


# --- packing ----------------------------------------------------------------------------------------


def _packed_archive(ctx: _Context, tps, info, read_institution_headers):
    """The Archive row and its packed file: reused when a previous attempt packed these very files."""
    from archiver.packing.packed import find_packed, pack

    institution, patient = ctx.institution, ctx.patient
    previous = (Archive.objects.filter(institution=institution, patient=patient, source_fingerprint=info.fingerprint)
                .exclude(status=Archive.Status.FAILED).order_by("-created_at").first())
    if previous is not None and previous.checksum:
        packed = find_packed(tps=tps, work_dir=WORK_DIR, archive=previous)
        if packed is not None or previous.copies.filter(status=ArchiveCopy.Status.VERIFIED).exists():
            return previous, packed
    headers = read_institution_headers(tps)
    header = headers.get(info.institution_dir)
    name = _free_name(institution, info)
    archive = Archive.objects.create(
        institution=institution, patient=patient, name=name, mrn=info.mrn, last_name=info.last_name,
        first_name=info.first_name, group=info.group, tps_path=info.tps_path, codec=institution.codec,
        source_fingerprint=info.fingerprint, status=Archive.Status.PACKING,
    )
    if previous is not None:  # an attempt that never recorded a digest cannot be resumed
        Archive.objects.filter(pk=previous.pk).update(status=Archive.Status.FAILED)

    progress = _Progress(ctx.task.pk)
    packed_at = timezone.localtime(timezone.now(), institution.zone)
    packed = pack(tps=tps, work_dir=WORK_DIR, info=info, name=name, institution=institution,
                  institution_id=header.institution_id if header else None,
                  institution_name=header.name if header else info.group, packed_at=packed_at, progress=progress)
    progress.flush()
    with transaction.atomic():
        Archive.objects.filter(pk=archive.pk).update(
            size=packed.size, raw_bytes=packed.raw_bytes, checksum=packed.sha256, manifest=packed.manifest,
            packed_at=packed_at, status=Archive.Status.PACKED,
        )
        ArchivedPlan.objects.bulk_create([
            ArchivedPlan(archive=archive, plan_id=p.plan_id, name=p.name, trial_names=list(p.trial_names),
                         created=_aware(p.created, institution), edited=_aware(p.edited, institution))
            for p in info.plans
        ])
    archive.refresh_from_db()
    record_event(actor=ctx.worker, event="archive.pack", institution=institution.code, mrns=[info.mrn], obj=archive,
                 detail={"name": name, "size": packed.size, "raw_bytes": packed.raw_bytes, "sha256": packed.sha256})
    return archive, packed


def _aware(value: dt.datetime | None, institution: Institution) -> dt.datetime | None:
    if value is None or timezone.is_aware(value):
        return value
    return timezone.make_aware(value, institution.zone)


def _free_name(institution: Institution, info) -> str:
    """The SPEC name, with ``_2``, ``_3`` ... when an archive of that name already exists."""
    edited = info.latest_edit or timezone.now().replace(tzinfo=None)
    taken = set(Archive.objects.filter(institution=institution, mrn=info.mrn).values_list("name", flat=True))
    clash = 1
    while True:
        name = archive_name(last_name=info.last_name, first_name=info.first_name, mrn=info.mrn,
                            edited=edited, codec=institution.codec, clash=clash)
        if name not in taken:
            return name
        clash += 1


# --- copying and verifying ------------------------------------------------------------------------------


def _copy_to_target(ctx: _Context, archive: Archive, packed, target: StorageTarget, *, share: float = 1.0) -> None:
    """Upload and verify one copy; ``share`` is this target's part of the upload step's progress bar."""
    copy = archive.copies.filter(target=target).first()
    if copy is not None and copy.status == ArchiveCopy.Status.VERIFIED:
        return
    if packed is None:
        raise StorageError(f"packed file of {archive.name} is gone and {target.name} has no verified copy")

    # The bar counts raw bytes (the patient's size); the upload sends compressed ones.
    scale = share * (archive.raw_bytes or archive.size or 1) / max(archive.size or 1, 1)
    count = _Progress(ctx.task.pk)

    def progress(n: int) -> None:
        count(int(n * scale))

    def chunks():
        for index, chunk in enumerate(packed.iter_chunks()):
            yield chunk
            if index == 0:
                checkpoint("upload")

    with open_target(target) as backend:
        copy = store_copy(archive=archive, chunks_factory=chunks, target=target, backend=backend, progress=progress)
        count.flush()
        check = verify_copy(copy=copy, backend=backend)
    record_event(actor=ctx.worker, event="archive.transfer", institution=ctx.institution.code, mrns=[archive.mrn],
                 obj=copy, outcome="ok" if check.outcome == "pass" else "failed",
                 detail={"target": target.name, "method": check.method, "reason": check.reason})


def _verify_archive(archive: Archive, packed, info, patient: TpsPatient) -> list[str]:
    """The archive opens and lists, matches its manifest file for file, and its plans are the
    patient's plans one to one; its name follows the rules."""
    problems: list[str] = []
    parts = parse_archive_name(archive.name)
    if parts is None or parts["mrn"] != mrn_part(info.mrn):
        problems.append(f"archive name {archive.name} does not follow the naming rules")
    if packed is not None:
        with packed.open() as stream:
            listing = inspect_archive(stream, archive.codec)
    else:
        # An earlier attempt's packed file is gone: read the archive back from a verified copy.
        listing = _inspect_stored_copy(archive)
    problems += listing.problems + compare_with_manifest(listing)
    manifest = listing.manifest or archive.manifest
    packed_plans = sorted((p["plan_id"], p["name"]) for p in manifest.get("plans", []))
    tps_plans = sorted((p.plan_id, p.name) for p in info.plans)
    if packed_plans != tps_plans:
        problems.append(f"plans in the archive {packed_plans} differ from the pending group's {tps_plans}")
    tps_files = sorted((f.path, f.size) for f in info.files)
    manifest_files = sorted((f["path"], f["size"]) for f in manifest.get("files", []))
    if tps_files != manifest_files:
        problems.append("files in the manifest differ from the patient's files in the TPS")
    return problems


def _inspect_stored_copy(archive: Archive):
    """List and hash the archive as stored on the first target holding a verified copy."""
    from archiver.packing.inspect import ArchiveListing

    for copy in archive.copies.filter(status=ArchiveCopy.Status.VERIFIED).select_related("target"):
        with open_target(copy.target) as backend:
            stream = io.BufferedReader(_ChunkStream(backend.read_chunks(archive.name)), buffer_size=1 << 20)
            return inspect_archive(stream, archive.codec)
    return ArchiveListing(problems=["no verified copy to read the archive back from"])


class _ChunkStream(io.RawIOBase):
    """A raw readable stream over an iterator of chunks (a target's read_chunks)."""

    def __init__(self, chunks):
        super().__init__()
        self._chunks, self._buffer = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._buffer))
        buffer[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        return n


def _finish_interrupted_removal(ctx: _Context, tps) -> PatientArchiveTask | None:
    """The folder is gone because an earlier attempt of this patient removed it: say so.

    Either the move was recorded (the attempt died just after), or it was not (finish recording it)."""
    from archiver.models import QuarantinedPatient
    from archiver.services.quarantine import complete_interrupted_move

    if complete_interrupted_move(institution=ctx.institution, source=tps, patient=ctx.patient, actor=ctx.worker):
        return _finish(ctx.task, Result.PASS, "finished the removal an interrupted attempt had started")
    done = QuarantinedPatient.objects.filter(
        institution=ctx.institution, tps_path=ctx.patient.tps_path, moved_at__isnull=False,
        archive__patient=ctx.patient, archive__status=Archive.Status.VERIFIED,
    ).select_related("archive").order_by("-moved_at").first()
    if done is not None and done.moved_at >= (ctx.task.started_at or done.moved_at):
        _set(ctx.task, archive=done.archive)
        return _finish(ctx.task, Result.PASS, "archived and removed by an earlier attempt of this task")
    return None
