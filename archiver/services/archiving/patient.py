"""One patient: claim -> pack -> copy to every target -> verify -> move the originals to the quarantine.

Each step can be repeated; a rerun after a crash reuses what an earlier attempt finished.
"""
from __future__ import annotations

import datetime as dt
import logging

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from archiver.faults import checkpoint
from archiver.models import PatientArchiveTask
from archiver.packing.stream_packer import PackError
from archiver.services.archiving.copies import copy_to_target, inspect_before_upload, verify_archive
from archiver.services.archiving.pack import packed_archive
from archiver.services.archiving.task_rows import (
    Result,
    Step,
    TransientArchiveError,
    PatientContext,
    finish_task,
    set_task,
    worker_name,
)
from archiver.services.claims import claim_patient, release_claim, renew_claim
from archiver.services.quarantine import OriginalsChanged, quarantine_patient
from audit.events import Event
from audit.services import record_event
from connectors.errors import ConnectorError, unforeseen
from connectors.storage import StorageError
from connectors.tps.base import TpsError
from core.dispatch import MAX_RETRIES, is_retryable, retry_delay
from inventory.models import Archive, ArchiveCopy, TpsPatient

log = logging.getLogger("archiver.services.archiving")

DATABASE_ERRORS = (OperationalError, InterfaceError)


def archive_patient(*, task_id: int, worker: str | None = None) -> PatientArchiveTask:
    """Run (or resume) one patient's archiving. Raises ``TransientArchiveError`` when a retry may help:
    a retryable TPS or storage error, or the database failing under the work (a restart, a dropped
    connection, SQLite's lock timeout), after which the retry resumes what this attempt finished. Any
    other error ends the patient × with the error named, its originals kept (see ``_stopped_by_error``)."""
    worker = worker or worker_name()
    try:
        return _archive_patient(task_id=task_id, worker=worker)
    except DATABASE_ERRORS as exc:  # before the patient was claimed (the claimed part raises its own)
        if not _database_gone(exc):
            raise
        _drop_broken_connection()
        raise _database_failed(exc) from exc


def _archive_patient(*, task_id: int, worker: str) -> PatientArchiveTask:
    task = PatientArchiveTask.objects.select_related("patient__institution", "run").get(pk=task_id)
    if task.result != Result.PENDING:
        return task  # already decided: a redelivered message does nothing
    patient = task.patient
    if not claim_patient(patient_id=patient.pk, worker=worker):
        return finish_task(task, Result.ERROR, "another worker is archiving this patient now; originals kept")
    PatientArchiveTask.objects.filter(pk=task.pk).update(attempts=F("attempts") + 1, started_at=timezone.now(),
                                                         claimed_by=worker, claimed_at=timezone.now())
    task.refresh_from_db()
    ctx = PatientContext(task=task, patient=patient, institution=patient.institution, worker=worker)
    try:
        return _archive_claimed(ctx)
    except (TpsError, StorageError, PackError) as exc:  # a packing failure keeps the originals too
        if getattr(exc, "retryable", False):
            # The attempts so far are the retries so far plus one: the wait before the next one is known.
            if task.attempts <= MAX_RETRIES:
                at = timezone.localtime(timezone.now() + dt.timedelta(seconds=retry_delay(task.attempts)),
                                        ctx.institution.zone)
                note = f"retrying at {at:%H:%M:%S} (attempt {task.attempts + 1} of {MAX_RETRIES + 1})"
            else:
                note = "retries used up"
            set_task(task, reason=f"{note}: {exc}"[:2000])
            raise TransientArchiveError(str(exc)) from exc
        return finish_task(task, Result.ERROR, f"{exc}; originals kept")
    except DATABASE_ERRORS as exc:
        if not _database_gone(exc):
            return _stopped_by_error(ctx, exc)  # a query that can never work (a schema out of date)
        _drop_broken_connection()  # so that the claim's release below, and the retry, get a new connection
        raise _database_failed(exc) from exc
    except Exception as exc:  # a bug must not leave the patient pending and its run open for ever
        if is_retryable(exc):
            raise  # another connector's error that says a later try may help: core.dispatch retries it
        return _stopped_by_error(ctx, exc)
    finally:
        _release_quietly(patient_id=patient.pk, worker=worker)


def _stopped_by_error(ctx: PatientContext, exc: Exception) -> PatientArchiveTask:
    """An error nobody planned for (a bug) stopped the patient: it ends × with the error named and its
    originals kept, so the run still closes; it is not retried (a retry would meet the same bug), the next
    run resumes the patient. When the error came after the folder moved into the quarantine, the move is
    recorded now, as the next run's recovery would. Call it from the ``except`` clause (it logs the trace)."""
    from sites.connections import open_institution_tps

    step = ctx.task.step
    log.exception("archiving %s stopped by an unexpected error at the %s step", ctx.patient.tps_path, step)
    error = unforeseen(exc)
    if step == Step.REMOVING:
        try:
            with open_institution_tps(ctx.institution) as tps:
                if tps.stat(ctx.patient.tps_path) is None:
                    finished = _finish_interrupted_removal(
                        ctx, tps, reason=f"the originals had moved when an unexpected error stopped the removal "
                                         f"({error}); the move is recorded")
                    if finished is not None:
                        return finished
        except TpsError as tps_exc:
            error += f" (the TPS could not be read after it: {tps_exc})"
    return finish_task(ctx.task, Result.ERROR, f"stopped by an unexpected error at the {step} step: {error}; "
                                               "originals kept")


# PostgreSQL's SQLSTATE classes of a failure a later try may not meet: 08 connection exception, 40 transaction
# rollback (deadlock, serialization), 53 insufficient resources (too many connections), 57 operator
# intervention (shut down, restarting); and 55P03, a lock not available.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")


def _database_gone(exc: Exception) -> bool:
    """The database failed under the work, which a later try may not meet: the connection is dead or could
    not be made (a restart, a failover, a dropped connection), a deadlock, or SQLite's lock timeout ran out.
    Not a query that can never work (SQLite calls a missing column an OperationalError too)."""
    if isinstance(exc, InterfaceError):
        return True
    if connection.vendor == "sqlite":
        return any(word in str(exc) for word in ("locked", "busy", "disk I/O error", "unable to open"))
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or ""
    if sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate == "55P03":
        return True
    try:
        return connection.connection is None or not connection.is_usable()
    except Exception:  # noqa: BLE001 - a connection too broken to be asked
        return True


def _database_failed(exc: Exception) -> TransientArchiveError:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return TransientArchiveError(f"the database failed under the work: {first_line}")


def _drop_broken_connection() -> None:
    """Close this thread's database connection after the database failed under it, so the next query opens
    a new one (Django reconnects only a closed connection). Not inside a transaction: a test's own."""
    if connection.in_atomic_block:
        return
    try:
        connection.close()
    except DatabaseError:
        pass


def _release_quietly(*, patient_id: int, worker: str) -> None:
    """Release the claim; when the database cannot be reached the claim runs out by itself (its lease)."""
    try:
        release_claim(patient_id=patient_id, worker=worker)
    except DATABASE_ERRORS as exc:
        _drop_broken_connection()
        log.warning("claim on patient %s not released (it runs out by itself): %s", patient_id, exc)


def _archive_claimed(ctx: PatientContext) -> PatientArchiveTask:
    from pinnacle.reader import read_institution_headers, read_patient
    from sites.connections import open_institution_tps

    task, patient, institution = ctx.task, ctx.patient, ctx.institution
    with open_institution_tps(institution) as tps:
        if tps.stat(patient.tps_path) is None:
            finished = _finish_interrupted_removal(ctx, tps)
            if finished is not None:
                return finished
            return finish_task(task, Result.ERROR, "patient folder is no longer in the TPS; nothing archived")
        info = read_patient(tps, patient.tps_path, group=patient.group)
        if info.errors:
            return finish_task(task, Result.ERROR, "unreadable: " + "; ".join(info.errors))
        if not info.plans and not _image_only_acknowledged(patient, info.fingerprint):
            return finish_task(task, Result.ERROR, "no plans (image-only patient): not archived automatically")

        set_task(task, step=Step.PACKING, bytes_total=info.total_bytes)
        archive, packed = packed_archive(ctx, tps, info, read_institution_headers)
        set_task(task, archive=archive)
        _renew(ctx)

        targets = list(institution.storage_targets.filter(enabled=True))
        if not targets:
            return finish_task(task, Result.ERROR, "no enabled storage target; originals kept")
        listing = None
        if packed is not None:
            set_task(task, step=Step.VERIFYING)
            listing = inspect_before_upload(archive, packed)
            if listing.problems:
                return _refuse(ctx, archive, listing.problems, "the packed archive was not uploaded")
        set_task(task, step=Step.UPLOADING, bytes_done=0)
        failed: dict[str, ConnectorError] = {}
        for target in targets:
            try:
                copy_to_target(ctx, archive, packed, target, share=1 / len(targets))
            except ConnectorError as exc:  # StorageError, or a secret of that target missing (SecretError)
                # One target failing must not hold back the copies on the others: whether the archive is
                # stored well enough to move the originals is decided below, against min_copies.
                failed[target.name] = exc
            _renew(ctx)

        set_task(task, step=Step.VERIFYING)
        problems = verify_archive(archive, listing, info, patient)
        copies = {c.target_id: c for c in archive.copies.all()}
        stored = []
        for target in targets:
            copy = copies.get(target.pk)
            if target.name in failed:
                continue
            if copy is None or copy.status != ArchiveCopy.Status.VERIFIED:
                # Stored and measured wrong right after the upload: bytes damaged on the way are an alarm
                # a person looks at before any original moves, however many other copies are good.
                problems.append(f"copy on {target.name} is not verified")
            else:
                stored.append(target)
        conflict = next((e for e in failed.values() if getattr(e, "exists", False)), None)
        if conflict is not None:
            # Another file under this archive's name: never a copy to repair over later (a repair would
            # replace it); the patient stops with that error, as it always did, and its originals stay.
            raise conflict
        if not problems and failed and len(stored) < institution.min_copies:
            # Too few copies (docs/keeping.md, "safely stored"): the target's own error decides the patient,
            # retried when it says a later try may help, else an error with the originals kept.
            raise next((e for e in failed.values() if getattr(e, "retryable", False)), next(iter(failed.values())))
        if problems:
            return _refuse(ctx, archive, problems)
        if failed:
            _copies_left_to_repair(ctx, archive, failed)
        newly_verified = archive.status != Archive.Status.VERIFIED
        with transaction.atomic():
            if newly_verified:
                Archive.objects.filter(pk=archive.pk).update(status=Archive.Status.VERIFIED, verified_at=timezone.now())
            record_event(actor=ctx.worker, event=Event.ARCHIVE_VERIFY, institution=institution.code,
                         mrns=[patient.mrn], obj=archive,
                         detail={"targets": [t.name for t in stored], "sha256": archive.checksum,
                                 **({"failed_targets": {n: str(e)[:300] for n, e in failed.items()}}
                                    if failed else {})})
        if newly_verified:
            archive.refresh_from_db()
        _renew(ctx)
        checkpoint("before_removal")

        set_task(task, step=Step.REMOVING)
        if tps.stat(patient.tps_path) is None:
            return finish_task(task, Result.WARNING, "archived, but the patient left the pending group before removal")
        group, unreadable = _group_now(tps, info.institution_dir)
        if group != institution.pending_group:
            # The folder stayed but its group was renamed in Pinnacle meanwhile: no longer ours to remove.
            now = unreadable or f"its group is now {group!r}, not the pending group {institution.pending_group!r}"
            return finish_task(task, Result.WARNING, f"archived, but {now}; originals kept")
        from pinnacle.reader import fingerprint_files, scan_patient_files

        files, _junk, links = scan_patient_files(tps, patient.tps_path)
        if fingerprint_files(files) != archive.source_fingerprint:
            return finish_task(task, Result.WARNING, "archived, but the patient's files changed during archiving; "
                                                 "originals kept (the next run archives the new state)")
        if links:
            # A link or special file is never read, so it is not in the archive: removing the folder would
            # lose whatever it stood for. Curation calls such a folder unreadable (docs/curation.md); this
            # catches one that appeared after packing.
            shown = ", ".join(link.rsplit("/", 1)[-1] for link in links[:5]) + (" ..." if len(links) > 5 else "")
            return finish_task(task, Result.WARNING, f"archived, but the folder holds {len(links)} link(s) or "
                                                 f"special file(s) not in the archive ({shown}); originals kept")
        try:
            quarantine_patient(institution=institution, source=tps, patient=patient, archive=archive,
                               institution_dir=info.institution_dir, actor=ctx.worker)  # discards the packed file
        except OriginalsChanged as exc:
            return finish_task(task, Result.WARNING, str(exc))
    if failed:
        return finish_task(task, Result.WARNING, _failed_targets_note(stored, failed))
    return finish_task(task, Result.PASS)


def _failed_targets_note(stored: list, failed: dict[str, Exception]) -> str:
    shown = "; ".join(f"{name}: {str(exc)[:300]}" for name, exc in failed.items())
    return (f"archived and verified on {', '.join(t.name for t in stored)} (enough for min_copies); no copy on "
            f"{', '.join(failed)} ({shown}): the next archive check with repair makes it")


def _copies_left_to_repair(ctx: PatientContext, archive: Archive, failed: dict[str, Exception]) -> None:
    """The targets that failed get their copy ``missing`` (nothing whole was stored there by this attempt: a
    half-done upload is removed by the upload itself; a copy an earlier attempt verified keeps its state):
    the archive check with repair makes it from a verified copy (docs/keeping.md), even on a target
    that lists empty, where an unknown state would wait for ever. Each failure is audited like any
    transfer."""
    for target in ctx.institution.storage_targets.filter(name__in=list(failed)):
        copy = ArchiveCopy(archive=archive, target=target, status=ArchiveCopy.Status.MISSING)
        copy.path = copy.encrypted_names().archive if copy.encrypted else archive.name
        with transaction.atomic():
            row, created = ArchiveCopy.objects.get_or_create(archive=archive, target=target,
                                                             defaults={"path": copy.path, "status": copy.status})
            if not created and row.status == ArchiveCopy.Status.UPLOADING:
                ArchiveCopy.objects.filter(pk=row.pk).update(status=ArchiveCopy.Status.MISSING)
            record_event(actor=ctx.worker, event=Event.ARCHIVE_TRANSFER, institution=ctx.institution.code,
                         mrns=[archive.mrn], obj=archive, outcome="failed",
                         detail={"target": target.name, "reason": str(failed[target.name])[:500],
                                 "left_to_repair": True})


def _group_now(tps, institution_dir: str) -> tuple[str | None, str]:
    """(the group name of ``institution_dir`` as Pinnacle's Institution file says right now, ""), or
    (None, why it cannot be told): the same rule as the TPS listing (the folder name when unnamed)."""
    from pinnacle.reader import InstitutionFileError, read_institution_headers

    try:
        header = read_institution_headers(tps).get(institution_dir)
    except InstitutionFileError as exc:
        return None, f"its group cannot be told (the Institution file cannot be read: {exc})"
    return (header.name if header is not None and header.name else institution_dir), ""


def _refuse(ctx: PatientContext, archive: Archive, problems: list[str], outcome: str = "") -> PatientArchiveTask:
    """The archive failed verification: recorded failed with its problems (the verdict and its audit
    row commit together); the originals stay."""
    with transaction.atomic():
        Archive.objects.filter(pk=archive.pk).update(status=Archive.Status.FAILED)
        record_event(actor=ctx.worker, event=Event.ARCHIVE_VERIFY, institution=ctx.institution.code,
                     mrns=[ctx.patient.mrn], obj=archive, outcome="failed", detail={"problems": problems[:20]})
    shown = problems[:5] + ([f"and {len(problems) - 5} more"] if len(problems) > 5 else [])
    return finish_task(ctx.task, Result.ERROR, "; ".join(shown + ([outcome] if outcome else [])) + "; originals kept")


def _image_only_acknowledged(patient: TpsPatient, fingerprint: str) -> bool:
    """A physicist reviewed this image-only patient, exactly as it is now, and chose to archive it."""
    from curation.models import Category
    from curation.selectors import acknowledged

    return acknowledged(patient=patient, category=Category.IMAGE_ONLY, fingerprint=fingerprint)


def _renew(ctx: PatientContext) -> None:
    if not renew_claim(patient_id=ctx.patient.pk, worker=ctx.worker):
        raise TpsError("the claim on this patient ran out and was taken by another worker", retryable=False)


def _finish_interrupted_removal(ctx: PatientContext, tps, *,
                                reason: str = "finished the removal an interrupted attempt had started",
                                ) -> PatientArchiveTask | None:
    """The folder is gone because an earlier attempt of this patient (or this one, stopped by an error)
    removed it: say so.

    Either the move was recorded (the attempt died just after), or it was not (finish recording it)."""
    from inventory.models import QuarantinedPatient
    from archiver.services.quarantine import complete_interrupted_move

    if complete_interrupted_move(institution=ctx.institution, source=tps, patient=ctx.patient, actor=ctx.worker):
        return finish_task(ctx.task, Result.PASS, reason)
    done = QuarantinedPatient.objects.filter(
        institution=ctx.institution, tps_path=ctx.patient.tps_path, moved_at__isnull=False,
        archive__patient=ctx.patient, archive__status=Archive.Status.VERIFIED,
    ).select_related("archive").order_by("-moved_at").first()
    if done is not None and done.moved_at >= (ctx.task.started_at or done.moved_at):
        set_task(ctx.task, archive=done.archive)
        return finish_task(ctx.task, Result.PASS, "archived and removed by an earlier attempt of this task")
    return None
