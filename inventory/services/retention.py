"""Moving archives' ``retain_until`` later as deliveries become known (docs/keeping.md, "Retention").

``retain_until`` = the patient's latest first delivery + the institution's ``retention_years``; at
packing the archive date stands in for the delivery. A loss scan knows every delivery its R&V source
holds and hands the latest per patient here: an archive whose date would end earlier is moved later
(a re-course, or a delivery learnt after packing). It is never moved earlier.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from django.db import transaction

from audit.events import Event
from audit.services import record_event
from inventory.models import Archive
from inventory.services.object_lock import has_locking_target, mirror_after_commit
from sites.models import Institution

MOVED_LISTED = 200  # archives named in the audit row's detail; every MRN is in its mrns


def extend_retention(*, institution: Institution, latest_delivery: Mapping[str, dt.datetime],
                     patient_of: Callable[[str], str] = lambda mrn: mrn, actor) -> int:
    """Move later the ``retain_until`` of the institution's archives whose patient (``patient_of(mrn)``,
    one key for all of a patient's MRNs) has a later delivery in ``latest_delivery``; returns how many
    moved. One query reads the archives, one bulk update and one audit row write the change together."""
    if not latest_delivery:
        return 0
    years = institution.retention_years
    moved: list[tuple[Archive, dt.datetime | None]] = []
    archives = (Archive.objects.filter(institution=institution).exclude(status=Archive.Status.FAILED)
                .only("pk", "name", "mrn", "retain_until"))
    for archive in archives.iterator(chunk_size=5000):
        delivered = latest_delivery.get(patient_of(archive.mrn.strip()))
        if delivered is None:
            continue
        end = Archive.retention_end(delivered, years)
        if archive.retain_until is None or archive.retain_until < end:
            moved.append((archive, archive.retain_until))
            archive.retain_until = end
    if not moved:
        return 0
    with transaction.atomic():
        Archive.objects.bulk_update([archive for archive, _ in moved], ["retain_until"], batch_size=2000)
        record_event(actor=actor, event=Event.ARCHIVE_RETENTION, institution=institution.code,
                     mrns=sorted({archive.mrn for archive, _ in moved}),
                     detail={"moved": len(moved), "retention_years": years, "archives": [
                         {"name": archive.name, "from": before.isoformat() if before else None,
                          "to": archive.retain_until.isoformat()} for archive, before in moved[:MOVED_LISTED]]})
        if has_locking_target(institution):  # S3 Object Lock: the store keeps them longer too, after commit
            mirror_after_commit([archive.pk for archive, _ in moved])
    return len(moved)
