"""The audit checkpoint's beat entry, and where checkpoints are kept.

The audit log is global, the storage targets belong to institutions: a checkpoint goes to the first
enabled target (lowest priority, then name) of every institution, a folder shared by two institutions
once. This module is an interface (it wires audit to sites); ``audit.checkpoints`` does the work.
"""
from __future__ import annotations

import functools

from celery import shared_task

from audit.actors import SCHEDULER
from audit.checkpoints import Destination, write_checkpoint
from core.dispatch import BackgroundTask
from sites.connections import open_target
from sites.models import Institution, StorageTarget


def checkpoint_destinations() -> list[Destination]:
    """Each institution's first enabled storage target, in institution order, each folder once."""
    found, seen = [], set()
    for institution in Institution.objects.order_by("code"):
        target = (StorageTarget.objects.filter(institution=institution, enabled=True)
                  .select_related("institution").order_by("priority", "name").first())
        if target is None or target.url in seen:
            continue
        seen.add(target.url)
        found.append(Destination(str(target), functools.partial(open_target, target)))
    return found


@shared_task(base=BackgroundTask)
def write_audit_checkpoint_task() -> dict[str, object]:
    """Beat entry (daily): the audit log's head written to the targets (``audit.checkpoint``)."""
    run = write_checkpoint(checkpoint_destinations(), actor=SCHEDULER)
    return {"head_id": run.checkpoint.head_id, "written": run.written, "failed": sorted(run.failed)}
