"""Removing originals: a move into the quarantine on the TPS, purged after the retention period.

The quarantine lives under the TPS root (``.pdas-quarantine`` unless the institution names another
folder relative to the root) so the move is a rename on one file system: atomic, no copy. The
folder keeps the patient's path (``<day>/<archive>/Institution_3/Mount_0/Patient_7``), so putting it
back is one move too.
"""
from __future__ import annotations

from connectors.tps import relative_to_root

import datetime as dt
import logging
import posixpath

from django.db import transaction
from django.utils import timezone

from archiver.faults import checkpoint
from inventory.models import Archive, QuarantinedPatient, TpsPatient
from sites.models import Institution
from pinnacle.institution_file import ParseError, remove_patient_lite
from connectors.tps.base import TpsError, TpsSource, clean_relpath
from audit.events import Event
from audit.services import record_event

DEFAULT_DIR = ".pdas-quarantine"
log = logging.getLogger("archiver.services.quarantine")


def quarantine_root(institution: Institution) -> str:
    """The quarantine folder relative to the TPS root (``quarantine_dir`` is absolute, inside the root)."""
    if not institution.quarantine_dir:
        return DEFAULT_DIR
    relative = relative_to_root(institution.quarantine_dir, institution.tps_url)
    if relative is None:
        raise TpsError(f"quarantine_dir {institution.quarantine_dir} is not inside the TPS root; originals kept")
    return clean_relpath(relative)


def quarantine_patient(*, institution: Institution, source: TpsSource, patient: TpsPatient, archive: Archive,
                       institution_dir: str, actor) -> QuarantinedPatient:
    """Move a verified patient's folder into the quarantine and drop it from Pinnacle's list."""
    if archive.status != Archive.Status.VERIFIED:
        raise TpsError(f"refusing to remove {patient.tps_path}: archive {archive.name} is not verified")
    now = timezone.now()
    target = posixpath.join(quarantine_root(institution), now.strftime("%Y%m%d"), archive.name, patient.tps_path)
    row = QuarantinedPatient.objects.create(
        institution=institution, archive=archive, tps_path=patient.tps_path, quarantine_path=target,
        total_bytes=patient.total_bytes, purge_after=now + dt.timedelta(days=institution.quarantine_days),
    )
    source.make_dirs(posixpath.dirname(target))
    source.rename(patient.tps_path, target)
    checkpoint("removal")
    # Pinnacle may have written into the folder between the last check and the move: what was moved is
    # proved to be what was archived, else it goes back (the next run archives the new state).
    if _fingerprint_at(source, target, as_path=patient.tps_path) != archive.source_fingerprint:
        _move_back(row, source=source, patient=patient)
        raise OriginalsChanged(f"archived, but {patient.tps_path} changed while it was being removed; originals "
                               "kept (the next run archives the new state)")
    _complete(row, institution=institution, source=source, patient=patient, institution_dir=institution_dir,
              actor=actor)
    return row


class OriginalsChanged(TpsError):
    """The moved folder is not what was archived; it was put back (or, if its place was taken meanwhile,
    kept in the quarantine unrecorded for a person, never purged: no row names it)."""


def _fingerprint_at(source: TpsSource, folder: str, *, as_path: str) -> str:
    """The patient fingerprint of ``folder`` as if it stood at ``as_path`` (fingerprints name files by path)."""
    from pinnacle.reader import FileInfo, fingerprint_files, scan_patient_files

    files, _junk, _links = scan_patient_files(source, folder)
    return fingerprint_files([FileInfo(path=as_path + f.path[len(folder):], size=f.size, mtime=f.mtime)
                              for f in files])


def _move_back(row: QuarantinedPatient, *, source: TpsSource, patient: TpsPatient) -> None:
    if source.stat(patient.tps_path) is None:
        source.rename(row.quarantine_path, patient.tps_path)
        row.delete()
        return
    # Pinnacle wrote a new folder at the old place meanwhile: both stay, the quarantined one kept by
    # nobody's purge (its row is dropped), and the move is logged for a person.
    log.warning("%s changed during removal and its place was taken; the moved folder stays at %s",
                patient.tps_path, row.quarantine_path)
    row.delete()


def _complete(row: QuarantinedPatient, *, institution: Institution, source: TpsSource, patient: TpsPatient,
              institution_dir: str, actor) -> None:
    header_note = ""
    try:
        remove_patient_lite(source, institution_dir=institution_dir, patient_path=patient.tps_path)
    except (ParseError, TpsError) as exc:
        header_note = f"Institution file not updated: {exc}"
    _discard_packed(source, row.archive)
    moved_at = timezone.now()
    # The move is recorded (moved_at), the patient marked gone and the removal audited in one
    # transaction: a crash before the commit leaves moved_at empty, and recovery completes it again.
    with transaction.atomic():
        row.moved_at = moved_at
        row.purge_after = moved_at + dt.timedelta(days=institution.quarantine_days)  # retention counts from the move
        row.save(update_fields=["moved_at", "purge_after"])
        TpsPatient.objects.filter(pk=patient.pk).update(present=False)
        record_event(actor=actor, event=Event.ORIGINALS_REMOVE, institution=institution.code, mrns=[patient.mrn],
                     obj=row, detail={"tps_path": patient.tps_path, "quarantine_path": row.quarantine_path,
                                      "archive": row.archive.name, "purge_after": row.purge_after.isoformat(),
                                      "note": header_note})


def _discard_packed(source: TpsSource, archive: Archive) -> None:
    """The packed file has served once the originals moved: removed from the TPS host's work folder before
    the move is recorded, so a recorded removal never leaves it behind, whoever records it (this attempt,
    its retry, the next run's recovery): no later attempt of the patient comes to take it away. A failure
    leaves litter, never an error."""
    from archiver.packing.packed import discard_packed_files
    from archiver.services.archiving.task_rows import WORK_DIR

    try:
        discard_packed_files(tps=source, work_dir=WORK_DIR, name=archive.name)
    except (OSError, TpsError) as exc:
        log.warning("could not remove the packed file of %s: %s", archive.name, exc)


def complete_interrupted_move(*, institution: Institution, source: TpsSource, patient: TpsPatient, actor) -> bool:
    """Finish a removal that moved the folder but died before recording it; False if there is none (or the
    moved folder had changed and went back)."""
    row = (QuarantinedPatient.objects.filter(institution=institution, tps_path=patient.tps_path, moved_at__isnull=True)
           .select_related("archive").order_by("-id").first())
    if row is None or source.stat(row.quarantine_path) is None or source.stat(patient.tps_path) is not None:
        return False
    return _settle_moved(row, institution=institution, source=source, patient=patient, actor=actor)


def _settle_moved(row: QuarantinedPatient, *, institution: Institution, source: TpsSource, patient: TpsPatient,
                  actor) -> bool:
    """Record a move a crash interrupted (True), once what was moved is proved to be what was archived; a
    folder that changed before the crash goes back instead (False)."""
    if _fingerprint_at(source, row.quarantine_path, as_path=patient.tps_path) != row.archive.source_fingerprint:
        _move_back(row, source=source, patient=patient)
        return False
    _complete(row, institution=institution, source=source, patient=patient,
              institution_dir=patient.tps_path.split("/", 1)[0], actor=actor)
    return True


def recover_interrupted_moves(*, institution: Institution, source: TpsSource, actor) -> int:
    """Settle every removal a crash interrupted: moved -> record it; never moved -> drop the row.

    A row whose patient a live worker still claims is that worker's removal in progress (created, the
    move not yet made): it is left alone, or this recovery would drop the row under the worker's move."""
    settled = 0
    now = timezone.now()
    for row in QuarantinedPatient.objects.filter(institution=institution, moved_at__isnull=True).select_related(
            "archive"):
        patient = TpsPatient.objects.filter(institution=institution, tps_path=row.tps_path).first()
        if patient is not None and patient.claimed_by and patient.claim_expires and patient.claim_expires > now:
            continue
        in_quarantine = source.stat(row.quarantine_path) is not None
        in_tps = source.stat(row.tps_path) is not None
        if in_quarantine and not in_tps and patient is not None:
            _settle_moved(row, institution=institution, source=source, patient=patient, actor=actor)
            settled += 1
        elif in_tps and not in_quarantine:
            row.delete()  # the move never happened: the originals are where they were
            settled += 1
    return settled
