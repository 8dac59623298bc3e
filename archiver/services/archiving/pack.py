"""Packing: the Archive row and its packed file, reused when an earlier attempt packed these very files."""
from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from archiver.faults import checkpoint
from archiver.naming import archive_name
from archiver.services.archiving.task_rows import WORK_DIR, PatientContext, ProgressCounter
from audit.events import Event
from audit.services import record_event
from connectors.tps.base import TpsError
from inventory.models import Archive, ArchiveCopy, ArchivedPlan
from sites.models import Institution


def packed_archive(ctx: PatientContext, tps, info, read_institution_headers):
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
    if previous is not None and not previous.checksum and not previous.copies.exists():
        # Killed while packing these very files: nothing reached a target, so the same name is packed
        # again (a suffix is only for a real clash).
        archive, name = previous, previous.name
    else:
        name = _free_name(institution, info)
        archive = Archive.objects.create(
            institution=institution, patient=patient, name=name, mrn=info.mrn, last_name=info.last_name,
            first_name=info.first_name, group=info.group, tps_path=info.tps_path, codec=institution.codec,
            source_fingerprint=info.fingerprint, status=Archive.Status.PACKING,
        )
        if previous is not None:  # an attempt that never recorded a digest cannot be resumed
            Archive.objects.filter(pk=previous.pk).update(status=Archive.Status.FAILED)
    discard_abandoned_work(tps=tps, patient=patient, keep=name)

    progress = ProgressCounter(ctx.task.pk)
    packed_at = timezone.localtime(timezone.now(), institution.zone)
    packed = pack(tps=tps, work_dir=WORK_DIR, info=info, name=name, institution=institution,
                  institution_id=header.institution_id if header else None,
                  institution_name=header.name if header else info.group, packed_at=packed_at, progress=progress)
    progress.flush()
    checkpoint("packed")
    with transaction.atomic():  # the packed archive's row, its plans and its audit row commit together
        Archive.objects.filter(pk=archive.pk).update(
            size=packed.size, raw_bytes=packed.raw_bytes, checksum=packed.sha256, manifest=packed.manifest,
            packed_at=packed_at, status=Archive.Status.PACKED,
            # Until the loss scan knows the patient's deliveries: the archive date + retention (docs/keeping.md).
            retain_until=Archive.retention_end(packed_at, institution.retention_years),
        )
        ArchivedPlan.objects.bulk_create([
            ArchivedPlan(archive=archive, plan_id=p.plan_id, name=p.name, trial_names=list(p.trial_names),
                         created=_aware(p.created, institution), edited=_aware(p.edited, institution))
            for p in info.plans
        ])
        record_event(actor=ctx.worker, event=Event.ARCHIVE_PACK, institution=institution.code, mrns=[info.mrn],
                     obj=archive, detail={"name": name, "size": packed.size, "raw_bytes": packed.raw_bytes,
                                          "sha256": packed.sha256})
    archive.refresh_from_db()
    return archive, packed


def _aware(value: dt.datetime | None, institution: Institution) -> dt.datetime | None:
    if value is None or timezone.is_aware(value):
        return value
    return timezone.make_aware(value, institution.zone)


def _free_name(institution: Institution, info) -> str:
    """The archive name (docs/contracts.md §4.1), with ``_2``, ``_3`` ... when another archive of that name
    exists (on a target, or being worked on)."""
    edited = info.latest_edit or timezone.now().replace(tzinfo=None)
    # A failed attempt that never reached a target does not hold its name.
    taken = set(Archive.objects.filter(institution=institution, mrn=info.mrn)
                .exclude(Q(status=Archive.Status.FAILED) & Q(copies__isnull=True)).values_list("name", flat=True))
    clash = 1
    while True:
        name = archive_name(last_name=info.last_name, first_name=info.first_name, mrn=info.mrn,
                            edited=edited, codec=institution.codec, clash=clash)
        if name not in taken:
            return name
        clash += 1


def discard_abandoned_work(*, tps, patient, keep: str) -> None:
    """Remove from the TPS host's work folder what earlier attempts of this patient packed under other
    names (an edited patient gets a new name; a failed attempt leaves its files). The patient's claim
    keeps every other worker away from these names; a failure leaves litter, never an error."""
    from archiver.packing.packed import discard_packed_files

    for name in Archive.objects.filter(patient=patient).exclude(name=keep).values_list("name", flat=True):
        try:
            discard_packed_files(tps=tps, work_dir=WORK_DIR, name=name)
        except (OSError, TpsError):
            pass
