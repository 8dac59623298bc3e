"""Reads of the archiver app: querysets for views, commands and services."""
from __future__ import annotations

from django.db.models import QuerySet

from archiver.models import Institution, TpsPatient

# --- the TPS as last read ------------------------------------------------------------------------


def present_tps_patients(*, institution: Institution) -> QuerySet[TpsPatient]:
    """Patient folders found by the last TPS sync, with their plans."""
    return (TpsPatient.objects.filter(institution=institution, present=True)
            .prefetch_related("plans").order_by("group", "tps_path"))


def tps_patients_in_group(*, institution: Institution, group: str) -> QuerySet[TpsPatient]:
    """Patient folders of one TPS group (by its name) found by the last sync, with their plans."""
    return present_tps_patients(institution=institution).filter(group=group)
