"""Classifying the pending-archive group (the categories of docs/contracts.md §7) from the TPS as last synced.

One query per table, whatever the group's size: the patients, their plans, the rules, the
archives of the same MRNs (and, for the few whose bytes agree, their manifests), the R&V index.

Order of the checks for one patient, and why:
1. ``unreadable`` (its ``read_error``, verbatim) alone: what was last read may be stale, so no
   other verdict about it can be trusted;
2. ``restored`` alone: an unchanged PDAS restore is exactly an archive's content; nothing else
   about it matters because it is not archived again. It is known by the restore's own record
   (``TpsPatient.restored_from`` and the fingerprint then), not by MRN, so an MRN alias changes
   nothing; the reason names both numbers when the archive's MRN is another;
3. otherwise every check that applies, one finding per category: ``naming`` (rules, the site's
   MRN pattern, an MRN shared with another patient of the group, or an MRN that is an alias of
   another's: docs/contracts.md §2.7), ``transitional`` (name patterns,
   and plans never delivered while a sibling was), ``duplicate`` (already in a verified archive of
   any of the patient's MRNs, through the aliases),
   ``image_only`` (no plan);
4. ``ready`` when none applies.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from inventory.models import TpsPatient, TpsPlan
from sites.models import Institution
from curation.models import Category
from curation.services.delivered import Deliveries, delivered_plans
from curation.services.duplicates import DuplicateFinder, manifests, verified_archives_by_mrn
from curation.services.rules import PlanNames, RuleBook, load_rule_book, naming_reasons, transitional_name_reasons
from lossdetect.services.alias_graph import MrnAliasGraph

_PATIENT_FIELDS = ("pk", "tps_path", "mrn", "last_name", "first_name", "middle_name", "image_sets", "file_count",
                   "total_bytes", "latest_mtime", "fingerprint", "read_error", "restored_from_id",
                   "restored_fingerprint", "restored_from__name", "restored_from__mrn")
_PLAN_FIELDS = ("pk", "patient_id", "plan_id", "name", "trial_names", "edited", "has_directory")


@dataclass
class PlanRow:
    pk: int
    plan_id: int
    name: str
    trial_names: list[str]
    edited: dt.datetime | None

    def names(self) -> PlanNames:
        return PlanNames(self.plan_id, self.name, tuple(str(t) for t in self.trial_names or []))


@dataclass
class PatientRow:
    pk: int
    tps_path: str
    mrn: str
    last_name: str
    first_name: str
    middle_name: str
    image_sets: list
    total_bytes: int
    latest_mtime: dt.datetime | None
    fingerprint: str
    read_error: str
    restored_from_name: str | None
    is_unchanged_restore: bool
    plans: list[PlanRow] = field(default_factory=list)
    restored_from_mrn: str = ""

    @property
    def display_name(self) -> str:
        return ", ".join(part for part in (self.last_name, self.first_name) if part)

    @property
    def last_edit(self) -> dt.datetime | None:
        edits = [p.edited for p in self.plans if p.edited is not None]
        return max(edits) if edits else self.latest_mtime


@dataclass
class Verdict:
    """One patient in one category, with every reason (a finding before it is stored)."""

    patient: PatientRow
    category: str
    reasons: list[str]
    plan_ids: list[int] = field(default_factory=list)


def pending_patients(*, institution: Institution) -> list[PatientRow]:
    """Present patients of the pending-archive group with their plans (two queries)."""
    patients = TpsPatient.objects.filter(institution=institution, group=institution.pending_group, present=True)
    rows: dict[int, PatientRow] = {}
    for values in patients.values(*_PATIENT_FIELDS).order_by("tps_path"):
        rows[values["pk"]] = PatientRow(
            pk=values["pk"], tps_path=values["tps_path"], mrn=values["mrn"].strip(), last_name=values["last_name"],
            first_name=values["first_name"], middle_name=values["middle_name"], image_sets=values["image_sets"] or [],
            total_bytes=values["total_bytes"], latest_mtime=values["latest_mtime"], fingerprint=values["fingerprint"],
            read_error=values["read_error"], restored_from_name=values["restored_from__name"],
            is_unchanged_restore=bool(values["restored_from_id"])
            and values["restored_fingerprint"] == values["fingerprint"],
            restored_from_mrn=(values["restored_from__mrn"] or "").strip(),
        )
    plans = TpsPlan.objects.filter(patient__in=patients).values(*_PLAN_FIELDS).order_by("patient_id", "plan_id")
    for values in plans:
        row = rows.get(values["patient_id"])
        if row is not None:
            row.plans.append(PlanRow(values["pk"], values["plan_id"], values["name"], values["trial_names"] or [],
                                     values["edited"]))
    return list(rows.values())


def _image_sets_text(image_sets: list) -> str:
    parts = []
    for item in image_sets:
        if isinstance(item, dict):
            images = item.get("images")
            parts.append(f"{item.get('modality') or '?'} ({images if images is not None else '?'} images)")
    return ", ".join(parts)


def _shared_mrns(patients: list[PatientRow], aliases: MrnAliasGraph | None = None) -> dict[int, str]:
    """A naming reason for each patient whose MRN another patient of the group also has, or whose MRN is an
    alias of another's (two MRNs of one patient: the same as one MRN in two folders)."""
    aliases = aliases or MrnAliasGraph()
    by_patient: dict[str, list[PatientRow]] = defaultdict(list)
    for patient in patients:
        if patient.mrn:
            by_patient[aliases.patient_of(patient.mrn)].append(patient)
    reasons = {}
    for twins in by_patient.values():
        if len(twins) < 2:
            continue
        for patient in twins:
            same = [o for o in twins if o is not patient and o.mrn == patient.mrn]
            aliased = [o for o in twins if o is not patient and o.mrn != patient.mrn]
            parts = []
            if same:
                others = "; ".join(f"{o.tps_path} ({o.display_name or 'no name'})" for o in same)
                parts.append(f"MRN {patient.mrn!r} is also the MRN of {others} in the pending group")
            if aliased:
                others = "; ".join(f"MRN {o.mrn!r} of {o.tps_path} ({o.display_name or 'no name'})" for o in aliased)
                parts.append(f"MRN {patient.mrn!r} is an alias of {others} in the pending group (MRN aliases: "
                             "one patient)")
            reasons[patient.pk] = "; ".join(parts)
    return reasons


def _restored_reason(patient: PatientRow, aliases: MrnAliasGraph) -> str:
    under = ""
    archived = patient.restored_from_mrn
    if archived and archived != patient.mrn:
        if patient.mrn and aliases.patient_of(archived) == aliases.patient_of(patient.mrn):
            under = f" (archived under MRN {archived!r}, an MRN alias of this patient's {patient.mrn!r})"
        else:
            under = f" (archived under MRN {archived!r}; the folder's MRN is {patient.mrn!r})"
    return (f"restored by PDAS from {patient.restored_from_name or 'an archive'}{under} and unchanged since: "
            "not archived again")


def _undelivered(patient: PatientRow, deliveries: Deliveries) -> tuple[list[str], list[int]]:
    if not deliveries.known:
        return [], []
    delivered = [p for p in patient.plans if p.pk in deliveries.plan_pks]
    if not delivered:
        return [], []  # nothing of this patient was delivered (or R&V knows another MRN): no sibling to compare
    names = ", ".join(repr(p.name) for p in delivered)
    reasons, plan_ids = [], []
    for plan in patient.plans:
        if plan.pk not in deliveries.plan_pks:
            reasons.append(f"plan Plan_{plan.plan_id} {plan.name!r} was never delivered, while {names} was (R&V)")
            plan_ids.append(plan.plan_id)
    return reasons, plan_ids


def classify_patients(patients: list[PatientRow], *, book: RuleBook, deliveries: Deliveries,
                      duplicates: DuplicateFinder, aliases: MrnAliasGraph | None = None) -> list[Verdict]:
    """Every patient's findings (at least one per patient); pure but for the duplicate content check.
    ``aliases``: the institution's MRN aliases (none: MRNs compared as written)."""
    aliases = aliases or MrnAliasGraph()
    shared = _shared_mrns(patients, aliases)
    pending_content: list[tuple[PatientRow, list]] = []
    verdicts: dict[int, list[Verdict]] = {}
    resumed: dict[int, str] = {}
    for patient in patients:
        found: list[Verdict] = []
        verdicts[patient.pk] = found
        if patient.read_error:
            found.append(Verdict(patient, Category.UNREADABLE, [patient.read_error]))
            continue
        if patient.is_unchanged_restore:
            found.append(Verdict(patient, Category.RESTORED, [_restored_reason(patient, aliases)]))
            continue
        plans = [p.names() for p in patient.plans]
        reasons, plan_ids = naming_reasons(book, last_name=patient.last_name, first_name=patient.first_name,
                                           middle_name=patient.middle_name, mrn=patient.mrn, plans=plans)
        if patient.pk in shared:
            reasons.append(shared[patient.pk])
        if reasons:
            found.append(Verdict(patient, Category.NAMING, reasons, plan_ids))

        reasons, plan_ids = transitional_name_reasons(book, plans)
        more, more_ids = _undelivered(patient, deliveries)
        for reason, plan_id in zip(more, more_ids):
            if plan_id not in plan_ids:  # already named as a copy/test: one reason per plan
                reasons.append(reason)
                plan_ids.append(plan_id)
        if reasons:
            found.append(Verdict(patient, Category.TRANSITIONAL, reasons, plan_ids))

        if not patient.plans:
            images = _image_sets_text(patient.image_sets)
            found.append(Verdict(patient, Category.IMAGE_ONLY, [
                f"image sets but no plan: {images}" if images else "no plans and no image sets"]))

        unfinished = duplicates.interrupted_removal(mrn=patient.mrn, patient_pk=patient.pk,
                                                    fingerprint=patient.fingerprint)
        if unfinished:
            resumed[patient.pk] = unfinished
            continue
        reason, candidates = duplicates.plan(mrn=patient.mrn, fingerprint=patient.fingerprint,
                                             total_bytes=patient.total_bytes)
        if reason:
            found.append(Verdict(patient, Category.DUPLICATE, [reason]))
        elif candidates:
            pending_content.append((patient, candidates))

    if pending_content:
        by_pk = manifests(sorted({a.pk for _, candidates in pending_content for a in candidates}))
        for patient, candidates in pending_content:
            reason = duplicates.compare(tps_path=patient.tps_path, candidates=candidates, manifests_by_pk=by_pk,
                                        mrn=patient.mrn)
            if reason:
                verdicts[patient.pk].append(Verdict(patient, Category.DUPLICATE, [reason]))

    result = []
    for patient in patients:
        found = verdicts[patient.pk] or [Verdict(patient, Category.READY, [resumed[patient.pk]] if patient.pk in resumed
                                                  else [])]
        result.extend(sorted(found, key=lambda v: list(Category.values).index(v.category)))
    return result


@dataclass
class Classification:
    verdicts: list[Verdict]
    warnings: list[str]
    patients: int


def classify_pending_group(*, institution: Institution) -> Classification:
    """Load the pending group, the rules, the archive index and the R&V data; classify every patient."""
    from lossdetect.selectors import alias_graph  # loaded here: it brings pandas, which curation needs only for R&V
    from sites.connections import open_institution_tps

    patients = pending_patients(institution=institution)
    book = load_rule_book(institution=institution)
    aliases = alias_graph(institution=institution)
    deliveries = delivered_plans(institution=institution, mrns={p.mrn for p in patients if p.mrn}, aliases=aliases)
    pending = TpsPatient.objects.filter(institution=institution, group=institution.pending_group, present=True)
    # Archives made under another MRN of a pending patient count as under its own (MRN aliases).
    mrns = {p.mrn for p in patients if p.mrn}
    archives = verified_archives_by_mrn(institution=institution, patients=pending,
                                        also_mrns=aliases.expand(m for m in mrns if m in aliases.patients) - mrns)
    finder = DuplicateFinder(archives, open_source=lambda: open_institution_tps(institution), aliases=aliases)
    try:
        verdicts = classify_patients(patients, book=book, deliveries=deliveries, duplicates=finder, aliases=aliases)
    finally:
        finder.close()
    warnings = [*book.problems, *([deliveries.warning] if deliveries.warning else []), *finder.warnings]
    return Classification(verdicts=verdicts, warnings=warnings, patients=len(patients))

