"""Acknowledging a finding: "reviewed, archive anyway".

An acknowledgement names the patient, the category and the patient's fingerprint when the physicist
looked; it holds only while the patient's files are unchanged, so an edit after the review brings
the finding back.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.actors import actor_name
from audit.events import Event
from audit.services import record_event
from curation.models import ACKNOWLEDGEABLE, Acknowledgement, CurationFinding
from curation.selectors import latest_done_run


@transaction.atomic
def acknowledge_finding(*, finding: CurationFinding, user, note: str) -> Acknowledgement:
    """Record that ``user`` reviewed ``finding`` and lets the archiver take the patient anyway.

    Raises ``ValidationError`` (one line) for a category the archiver never takes, a finding of an
    older run, a patient changed since the run, or an empty note.
    """
    note = (note or "").strip()
    patient = finding.patient
    if finding.category not in ACKNOWLEDGEABLE:
        raise ValidationError(f"a {finding.get_category_display().lower()} finding cannot be acknowledged: "
                              "the archiver never takes such a patient")
    if not note:
        raise ValidationError("say in a note what was reviewed")
    latest = latest_done_run(institution=finding.run.institution)
    if latest is None or latest.pk != finding.run_id:
        raise ValidationError("this finding is from an older curation run; re-run curation and review again")
    if not patient.fingerprint or patient.fingerprint != finding.fingerprint:
        raise ValidationError("the patient's files changed since this curation; re-run curation and review again")
    acknowledgement = Acknowledgement(
        patient=patient, category=finding.category, fingerprint=finding.fingerprint,
        user=user if getattr(user, "pk", None) else None,
        username=actor_name(user), note=note[:5000],
        reasons=list(finding.reasons),
    )
    acknowledgement.full_clean()
    acknowledgement.save()
    record_event(actor=user, event=Event.CURATION_ACKNOWLEDGE, institution=finding.run.institution.code,
                 mrns=[patient.mrn], obj=acknowledgement,
                 detail={"category": finding.category, "tps_path": patient.tps_path, "note": note[:1000],
                         "fingerprint": finding.fingerprint, "reasons": finding.reasons[:50], "run": finding.run_id})
    return acknowledgement
