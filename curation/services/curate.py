"""A curation run: re-read the TPS (incrementally), classify the pending group, store the findings.

``run_curation`` = ``create_curation`` (the ``queued`` row) + ``execute_curation`` (the work),
so a page can create the row and hand its id to a task (``curation.tasks.curate_task``).

A TPS that cannot be read, or a pending-archive group that the TPS does not have, fails the run
(``failed``, with a one-line reason) and raises ``TpsError``: nothing is known then, and "nothing
to fix" must never be read from it. Checks that could not be made (an unreadable R&V source, a
rule with a bad expression) do not fail the run; they are listed in its ``warnings``.
"""
from __future__ import annotations

import logging
import time

from django.db import transaction
from django.utils import timezone

from sites.models import Institution
from connectors.tps.base import TpsError
from audit.actors import actor_name
from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event
from curation.models import Acknowledgement, Category, CurationFinding, CurationRun, needs_person
from curation.services.classify import Verdict, classify_pending_group
from curation.services.rules import ensure_default_rules

logger = logging.getLogger(__name__)

KEEP_FINDINGS_OF_RUNS = 10  # per institution; older runs keep their counts, the audit log the rest
WRITE_BATCH = 1000


class PendingGroupMissing(TpsError):
    """The institution's pending-archive group is not a group of its TPS: a configuration error."""


def create_curation(*, institution: Institution, actor) -> CurationRun:
    return CurationRun.objects.create(institution=institution, requested_by=actor_name(actor))


def run_curation(*, institution: Institution, actor, refresh_tps: bool = True) -> CurationRun:
    """Curate the institution's pending-archive group now; returns the ``done`` run.

    Raises ``TpsError`` (the run is stored ``failed``) when the TPS cannot be read or lacks the group.
    """
    run = create_curation(institution=institution, actor=actor)
    return execute_curation(run=run, refresh_tps=refresh_tps)


def execute_curation(*, run: CurationRun, refresh_tps: bool = True) -> CurationRun:
    """Do the work of a created run, to ``done`` or ``failed`` (see the module docstring)."""
    institution = run.institution
    run.mark_running()
    started = time.monotonic()
    try:
        sync_counts = _refresh(institution, run.requested_by) if refresh_tps else {}
        classified_at = time.monotonic()
        ensure_default_rules(institution=institution)
        classification = classify_pending_group(institution=institution)
    except TpsError as exc:
        _fail(run, str(exc))
        raise
    except Exception as exc:  # a bug must not leave the run "running" for ever
        logger.exception("curation run %s failed", run.pk)
        _fail(run, f"internal error: {' '.join(str(exc).split()) or type(exc).__name__}")
        raise
    seconds = {"sync_seconds": round(classified_at - started, 3),
               "classify_seconds": round(time.monotonic() - classified_at, 3)}
    _store(run, classification.verdicts, classification.warnings,
           extra={"patients": classification.patients, **sync_counts, **seconds})
    return run


def _refresh(institution: Institution, actor: str) -> dict[str, int]:
    from inventory.services.tps_sync import sync_institution

    report = sync_institution(institution=institution, actor=actor)
    if institution.pending_group not in report.groups:
        found = ", ".join(sorted(report.groups)) or "none"
        raise PendingGroupMissing(f"institution {institution.code}: pending_group {institution.pending_group!r} is "
                                  f"not a group of the TPS (groups found: {found})")
    return {"patients_parsed": report.patients_parsed, "patients_unchanged": report.patients_unchanged}


def _fail(run: CurationRun, reason: str) -> None:
    run.status, run.error, run.finished_at = CurationRun.Status.FAILED, reason[:2000], timezone.now()
    with transaction.atomic():  # the failed run and its audit row commit together
        run.save(update_fields=["status", "error", "finished_at"])
        record_event(actor=run.requested_by, event=Event.CURATION_RUN, institution=run.institution.code, obj=run,
                     outcome=AuditEvent.Outcome.FAILED, detail={"error": reason[:1000]})


def valid_acknowledgements(*, institution: Institution) -> set[tuple[int, str, str]]:
    """(patient pk, category, fingerprint) of every acknowledgement of a present pending patient."""
    return set(Acknowledgement.objects.filter(
        patient__institution=institution, patient__group=institution.pending_group, patient__present=True,
    ).values_list("patient_id", "category", "fingerprint"))


def verdict_needs_person(verdict: Verdict, acknowledged: set[tuple[int, str, str]]) -> bool:
    key = (verdict.patient.pk, verdict.category, verdict.patient.fingerprint)
    return needs_person(verdict.category, acknowledged=key in acknowledged)


def _store(run: CurationRun, verdicts: list[Verdict], warnings: list[str], *, extra: dict) -> None:
    institution = run.institution
    acknowledged = valid_acknowledgements(institution=institution)
    counts = {category: 0 for category in Category.values}
    for verdict in verdicts:
        counts[verdict.category] += 1
    to_fix = sorted({v.patient.mrn or v.patient.tps_path for v in verdicts if verdict_needs_person(v, acknowledged)})
    with transaction.atomic():
        CurationFinding.objects.bulk_create([
            CurationFinding(run=run, patient_id=v.patient.pk, category=v.category, reasons=v.reasons,
                            plan_ids=v.plan_ids, fingerprint=v.patient.fingerprint, mrn=v.patient.mrn[:64],
                            patient_name=v.patient.display_name[:400], tps_path=v.patient.tps_path,
                            last_edit=v.patient.last_edit)
            for v in verdicts
        ], batch_size=WRITE_BATCH)
        run.counts = {**counts, "needs_person": len(to_fix), **extra}
        run.warnings = warnings
        run.status, run.error, run.finished_at = CurationRun.Status.DONE, "", timezone.now()
        run.save(update_fields=["counts", "warnings", "status", "error", "finished_at"])
        _prune(institution)
        record_event(actor=run.requested_by, event=Event.CURATION_RUN, institution=institution.code, obj=run,
                     mrns=[v.patient.mrn for v in verdicts],
                     detail={**run.counts, "warnings": warnings[:50], "to_fix": to_fix[:200]})
        if to_fix:
            from curation.services.notify import send_curation_alert

            transaction.on_commit(lambda: send_curation_alert(run=run))


def _prune(institution: Institution) -> None:
    done = CurationRun.objects.filter(institution=institution, status=CurationRun.Status.DONE)
    keep = list(done.order_by("-finished_at", "-pk").values_list("pk", flat=True)[:KEEP_FINDINGS_OF_RUNS])
    CurationFinding.objects.filter(run__in=done).exclude(run_id__in=keep).delete()
