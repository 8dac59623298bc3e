"""Reads of curation: the latest run, its findings for the pages, and what the archiver may take."""
from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from inventory.models import TpsPatient
from sites.models import Institution
from curation.models import NEVER_ARCHIVED, Acknowledgement, Category, CurationFinding, CurationRun


def latest_run(*, institution: Institution) -> CurationRun | None:
    """The most recently created run, whatever its status (a page shows it queued, running or failed)."""
    return CurationRun.objects.filter(institution=institution).order_by("-created_at", "-pk").first()


def latest_done_run(*, institution: Institution) -> CurationRun | None:
    """The run whose findings decide: the latest that finished."""
    return (CurationRun.objects.filter(institution=institution, status=CurationRun.Status.DONE)
            .order_by("-finished_at", "-pk").first())


def _valid_acknowledgement() -> Exists:
    """An acknowledgement of the (outer) finding's patient and category, for the content it was found on."""
    return Exists(Acknowledgement.objects.filter(
        patient=OuterRef("patient"), category=OuterRef("category"), fingerprint=OuterRef("fingerprint")))


def curation_allows(patients: QuerySet[TpsPatient], *, institution: Institution) -> QuerySet[TpsPatient]:
    """``patients`` narrowed to those the latest curation lets the archiver take.

    A patient qualifies when the latest ``done`` run classified its current content (fingerprint)
    and every finding is ``ready`` or acknowledged for that content; never when a finding is
    ``unreadable``, ``restored`` or ``duplicate``. No curation yet: nobody qualifies.
    """
    run = latest_done_run(institution=institution)
    if run is None:
        return patients.none()
    findings = CurationFinding.objects.filter(run=run, patient=OuterRef("pk"))
    current = findings.filter(fingerprint=OuterRef("fingerprint")).exclude(fingerprint="")
    blocking = findings.exclude(category=Category.READY).filter(
        Q(category__in=NEVER_ARCHIVED) | ~_valid_acknowledgement()
    )
    return patients.filter(Exists(current)).exclude(Exists(blocking))


def acknowledged(*, patient: TpsPatient, category: str, fingerprint: str) -> bool:
    """Whether ``category`` of the patient is acknowledged for exactly this content."""
    return bool(fingerprint) and Acknowledgement.objects.filter(
        patient=patient, category=category, fingerprint=fingerprint).exists()


def run_findings(*, run: CurationRun, category: str | None = None) -> QuerySet[CurationFinding]:
    """A run's findings for the table, with ``acknowledged`` annotated (no query per row)."""
    findings = run.findings.all()
    if category:
        findings = findings.filter(category=category)
    return (findings.select_related("patient").annotate(acknowledged=_valid_acknowledgement())
            .order_by("tps_path", "category"))


def category_counts(*, run: CurationRun) -> dict[str, int]:
    counts = dict.fromkeys(Category.values, 0)
    counts.update(run.findings.values_list("category").annotate(n=Count("id")).values_list("category", "n"))
    return counts


def patient_findings(*, patient: TpsPatient, run: CurationRun | None) -> QuerySet[CurationFinding]:
    if run is None:
        return CurationFinding.objects.none()
    return (CurationFinding.objects.filter(run=run, patient=patient).annotate(acknowledged=_valid_acknowledgement())
            .order_by("category"))


def patient_acknowledgements(*, patient: TpsPatient) -> QuerySet[Acknowledgement]:
    return Acknowledgement.objects.filter(patient=patient).order_by("-at")
