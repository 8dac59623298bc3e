"""Claiming a patient for archiving: one worker at a time, and a dead worker's claim runs out.

The claim is a conditional UPDATE that succeeds only when nobody holds an unexpired claim, so two
workers (or a redelivered task beside the original) can never archive the same patient at once.
"""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from inventory.models import TpsPatient


def lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "PDAS_CLAIM_LEASE_SECONDS", 900))


def claim_patient(*, patient_id: int, worker: str) -> bool:
    """Take the patient for ``worker``; False when another worker holds a live claim."""
    now = timezone.now()
    changed = (
        TpsPatient.objects.filter(pk=patient_id)
        .filter(Q(claimed_by="") | Q(claimed_by=worker) | Q(claim_expires__lt=now) | Q(claim_expires__isnull=True))
        .update(claimed_by=worker, claim_expires=now + lease())
    )
    return changed == 1


def renew_claim(*, patient_id: int, worker: str) -> bool:
    """Extend a held claim; False when it was lost (expired and taken): the caller must stop."""
    changed = TpsPatient.objects.filter(pk=patient_id, claimed_by=worker).update(
        claim_expires=timezone.now() + lease()
    )
    return changed == 1


def release_claim(*, patient_id: int, worker: str) -> None:
    TpsPatient.objects.filter(pk=patient_id, claimed_by=worker).update(claimed_by="", claim_expires=None)
