"""Finding the archives a restore could use: the index first, then the targets' manifests."""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Prefetch, Q, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Concat, Replace, StrIndex, Substr, Upper
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.models import Archive, ArchiveCopy
from sites.models import Institution
from archiver.naming import mrn_part, name_part, parse_archive_name
from archiver.services.archive_index import (
    MANIFEST_SUFFIX, SidecarError, TargetArchive, archive_names, check_institution, index_target_archive,
    manifest_patient_path, read_target_archive,
)
from archiver.services.restore.encrypted_search import EncryptedScan
from archiver.services.restore.errors import RestoreRefused
from lossdetect.selectors import alias_graph
from connectors.storage import StorageError
from sites.connections import open_target
from audit.events import Event
from audit.services import record_event

RESTORABLE = (ArchiveCopy.Status.VERIFIED, ArchiveCopy.Status.UPLOADED)
TARGET_MANIFESTS_LIMIT = 200  # manifests read per search from targets, beyond what the index knows
_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")


@dataclass
class Candidate:
    """One archive a restore could use. ``archive_id`` is None for an archive found only on a target."""

    name: str
    mrn: str
    last_name: str
    first_name: str
    tps_patient_id: int | None
    tps_path: str
    packed_at: dt.datetime | None
    plans: list[str]
    size: int | None
    targets: list[str]  # targets holding a usable copy, in the order a restore tries them
    status: str  # the archive's status, or "not indexed"
    archive_id: int | None = None
    sha256: str = ""  # the archive's digest: what finds it again on an encrypted target

    @property
    def identity(self) -> tuple:
        """Who the archive is of: one Pinnacle patient (its MRN, names and internal id)."""
        return (self.mrn, self.last_name.casefold().strip(), self.first_name.casefold().strip(), self.tps_patient_id)

    @property
    def display_name(self) -> str:
        return ", ".join(p for p in (self.last_name, self.first_name) if p) or "?"

    def describe(self) -> str:
        packed = self.packed_at.strftime("%Y-%m-%d") if self.packed_at else "?"
        folder = self.tps_path.rsplit("/", 1)[-1] or "?"
        return f"{self.name} ({self.display_name}, {folder}, {len(self.plans)} plans, packed {packed})"


class CandidateList(list):
    """Candidates, newest first; ``unreachable`` names targets that could not be searched (unknown, not "none")."""

    def __init__(self, items=(), unreachable: list[str] | None = None, unrestorable: list[str] | None = None):
        super().__init__(items)
        self.unreachable = unreachable or []
        # Archives that match but have no whole copy to restore from, each with its copies' states: a
        # patient whose copies all went bad must not look like a patient never archived.
        self.unrestorable = unrestorable or []


def _name_tokens(name: str | None) -> list[str]:
    return [t for t in re.split(r"[\s,;]+", (name or "").strip()) if t]


def _ascii_token(token: str) -> str:
    """A search word as it appears in archive names (pinyin, upper case), without separators."""
    ascii_name = name_part(token, "")
    return "" if ascii_name == "UNKNOWN" else _NOT_ALNUM.sub("", ascii_name)


def copy_order(copy: ArchiveCopy) -> tuple:
    return (copy.status != ArchiveCopy.Status.VERIFIED, copy.target.priority, copy.target.name)


def _matching_archives(institution: Institution, mrns: tuple[str, ...], tokens: list[str]):
    """The institution's archives of the MRNs (any case) whose names hold every token."""
    archives = (Archive.objects.filter(institution=institution)
                .annotate(full_name=Concat(F("last_name"), F("first_name")),
                          # The NAME part of the file name (before the first "_"), without its separators.
                          ascii_name=Replace(Substr(F("name"), 1, StrIndex(F("name"), Value("_")) - 1), Value("-"),
                                             Value("")),
                          pinnacle_id=KT("manifest__patient__tps_patient_id"))
                .defer("manifest"))  # lists every file: large, and not needed to list candidates
    if mrns:
        archives = archives.annotate(mrn_upper=Upper("mrn")).filter(mrn_upper__in=[m.upper() for m in mrns])
    for token in tokens:
        match = (Q(last_name__icontains=token) | Q(first_name__icontains=token) | Q(full_name__icontains=token)
                 | Q(mrn=token))
        if ascii_token := _ascii_token(token):
            match |= Q(ascii_name__icontains=ascii_token)
        archives = archives.filter(match)
    return archives


def _db_candidates(institution: Institution, mrns: tuple[str, ...], tokens: list[str]) -> list[Candidate]:
    copies = ArchiveCopy.objects.filter(status__in=RESTORABLE, target__enabled=True).select_related("target")
    archives = (_matching_archives(institution, mrns, tokens)
                .filter(Exists(copies.filter(archive=OuterRef("pk"))))
                .prefetch_related(Prefetch("copies", queryset=copies), "plans"))
    found = []
    for archive in archives:
        ordered = sorted(archive.copies.all(), key=copy_order)
        found.append(Candidate(
            name=archive.name, mrn=archive.mrn, last_name=archive.last_name, first_name=archive.first_name,
            tps_patient_id=_int_or_none(archive.pinnacle_id), tps_path=archive.tps_path, packed_at=archive.packed_at,
            plans=[p.name for p in archive.plans.all()], size=archive.size, targets=[c.target.name for c in ordered],
            status=archive.status, archive_id=archive.pk, sha256=archive.checksum,
        ))
    return found


def _db_unrestorable(institution: Institution, mrns: tuple[str, ...], tokens: list[str]) -> list[tuple[str, str]]:
    """(MRN, line) per matching archive with no copy a restore could use; the line names the archive and
    each copy's state."""
    usable = ArchiveCopy.objects.filter(status__in=RESTORABLE, target__enabled=True, archive=OuterRef("pk"))
    archives = (_matching_archives(institution, mrns, tokens).exclude(Exists(usable))
                .prefetch_related(Prefetch("copies", queryset=ArchiveCopy.objects.select_related("target")))
                .order_by("-packed_at", "name"))
    found = []
    for archive in archives:
        states = ", ".join(f"{c.target.name}: {c.get_status_display()}"
                           + ("" if c.target.enabled else f" ({_('target disabled')})")
                           for c in sorted(archive.copies.all(), key=lambda c: c.target.name))
        found.append((archive.mrn, f"{archive.name}: {_('no whole copy to restore from')} "
                                   f"({states or _('no copy recorded')})"))
    return found


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _name_matches(archive_name: str, mrns: tuple[str, ...], tokens: list[str]) -> bool:
    parts = parse_archive_name(archive_name)
    if parts is None:
        return False
    if mrns and parts["mrn"].upper() not in {mrn_part(mrn).upper() for mrn in mrns}:
        return False
    flat = parts["name"].replace("-", "")
    return all(_ascii_token(t) and _ascii_token(t) in flat for t in tokens)


def _candidate_from_target(found: TargetArchive, institution: Institution) -> Candidate:
    patient = found.manifest["patient"]
    packed_at = None
    try:
        packed_at = dt.datetime.fromisoformat(found.manifest.get("packed_at") or "")
    except (TypeError, ValueError):
        pass
    if packed_at is not None and timezone.is_naive(packed_at):
        packed_at = packed_at.replace(tzinfo=institution.zone)
    return Candidate(
        name=found.name, mrn=patient["mrn"].strip(), last_name=str(patient.get("last_name") or ""),
        first_name=str(patient.get("first_name") or ""), tps_patient_id=_int_or_none(patient.get("tps_patient_id")),
        tps_path=manifest_patient_path(found.manifest), packed_at=packed_at,
        plans=[str(p.get("name") or "") for p in found.manifest.get("plans", []) if isinstance(p, dict)],
        size=found.size, targets=[found.target.name], status="not indexed", sha256=found.sha256,
    )


def _manifest_matches(candidate: Candidate, mrns: tuple[str, ...], tokens: list[str]) -> bool:
    """Whether an archive read from an encrypted target (whose object name shows nothing) is one asked for:
    the same rules as the index search, on what its manifest says."""
    if mrns and candidate.mrn.upper() not in {m.upper() for m in mrns}:
        return False
    names = [candidate.last_name.casefold(), candidate.first_name.casefold(),
             (candidate.last_name + candidate.first_name).casefold()]
    return all(any(t.casefold() in n for n in names) or t == candidate.mrn or _name_matches(candidate.name, (), [t])
               for t in tokens)


def _encrypted_target_candidates(institution: Institution, target, backend, mrns: tuple[str, ...], tokens: list[str],
                                 budget: int, found: dict[str, Candidate], by_digest: dict[str, Candidate],
                                 unreachable: list[str]) -> int:
    """Add the archives of an encrypted target the index lacks to ``found``; the manifests it decrypted."""
    scan = EncryptedScan(institution, target, backend, limit=budget)
    for read in scan:
        try:
            check_institution(read, institution)
        except SidecarError:
            continue  # another institution's archive on a shared store: never shown here
        candidate = _candidate_from_target(read, institution)
        if not _manifest_matches(candidate, mrns, tokens):
            continue
        same = by_digest.get(read.sha256) or found.get(read.name)
        if same is not None:
            same.targets.append(target.name)
            continue
        found[read.name] = by_digest[read.sha256] = candidate
    unreachable.extend(scan.problems)
    return scan.read


def _target_candidates(institution: Institution, mrns: tuple[str, ...], tokens: list[str], unreachable: list[str]
                       ) -> list[Candidate]:
    """Archives on the targets that the index lacks, read from their ``.manifest.json`` (decrypted, on an
    encrypted target)."""
    found: dict[str, Candidate] = {}
    by_digest: dict[str, Candidate] = {}  # one archive on a plain and an encrypted target: one candidate
    budget = TARGET_MANIFESTS_LIMIT
    for target in institution.storage_targets.filter(enabled=True).order_by("priority", "name"):
        try:
            with open_target(target) as backend:
                if target.encrypt_to:
                    budget -= _encrypted_target_candidates(institution, target, backend, mrns, tokens, budget,
                                                           found, by_digest, unreachable)
                    continue
                names = [n for n in archive_names(backend) if _name_matches(n, mrns, tokens)]
                known = set(Archive.objects.filter(institution=institution, name__in=names)
                            .values_list("name", flat=True))
                for name in names:
                    if name in known:
                        continue
                    if name in found:
                        found[name].targets.append(target.name)
                        continue
                    if budget <= 0:
                        break
                    budget -= 1
                    try:
                        read = read_target_archive(backend, target, name)
                        check_institution(read, institution)
                        candidate = _candidate_from_target(read, institution)
                    except SidecarError:
                        continue  # not restorable as it stands; rebuild_index reports it
                    if mrns and candidate.mrn not in mrns:
                        continue  # the name's MRN part matched a different MRN (characters replaced)
                    found[name] = by_digest[read.sha256] = candidate
        except StorageError as exc:
            unreachable.append(f"{target.name}: {exc}")
    return list(found.values())


def find_candidates(*, institution: Institution, mrn: str | None = None, name: str | None = None,
                    actor=None, search_targets: bool = True) -> CandidateList:
    """Every archive of the patient(s) asked for: by exact MRN (any of the patient's MRNs, through its MRN
    aliases) and/or by name words, newest first.

    The index comes first; then the targets' ``.manifest.json`` files for archives the index does
    not know (``search_targets``). A target that cannot be listed is named in ``unreachable``.
    The search is audited (``restore.search``) with the MRNs it showed.
    """
    # What a person types: full-width digits and letters from a Chinese input method, stray spaces, any
    # case. NFKC makes "０００１２３" the "000123" on record; MRNs then compare without regard to case.
    mrn = unicodedata.normalize("NFKC", mrn or "").strip()
    name = unicodedata.normalize("NFKC", name or "")
    tokens = _name_tokens(name)
    if not mrn and not tokens:
        raise RestoreRefused("give an MRN or a name to search for")
    mrns = alias_graph(institution=institution).mrns_of(mrn) if mrn else ()
    found = _db_candidates(institution, mrns, tokens)
    unrestorable = _db_unrestorable(institution, mrns, tokens)
    unreachable: list[str] = []
    if search_targets:
        found += _target_candidates(institution, mrns, tokens, unreachable)
    epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    found.sort(key=lambda c: (c.packed_at or epoch, c.name), reverse=True)
    record_event(actor=actor, event=Event.RESTORE_SEARCH, institution=institution.code,
                 mrns=[c.mrn for c in found] + [mrn for mrn, _line in unrestorable],
                 detail={"mrn": mrn, "name": name or "", "candidates": len(found), "unreachable": unreachable,
                         "unrestorable": len(unrestorable)})
    return CandidateList(found, unreachable, [line for _mrn, line in unrestorable])


def choose_candidate(candidates: CandidateList, *, archive_name: str | None = None, asked: str = "") -> Candidate:
    """The candidate to restore: the one named, else the newest archive of the only patient found.

    Several patients (two people sharing an MRN, or one person with two Pinnacle patients) and no
    ``archive_name`` is ambiguous: ``RestoreRefused`` lists them and nothing is restored.
    """
    listing = "; ".join(c.describe() for c in candidates[:10]) + (" ..." if len(candidates) > 10 else "")
    unreachable = f" (targets not searched: {'; '.join(candidates.unreachable)})" if candidates.unreachable else ""
    if archive_name:
        for candidate in candidates:
            if candidate.name == archive_name:
                return candidate
        if not candidates:
            raise RestoreRefused(f"no archive of {asked} was found{unreachable}")
        raise RestoreRefused(f"--archive {archive_name} is not an archive of {asked}; its archives: {listing}")
    if not candidates and candidates.unrestorable:
        raise RestoreRefused(f"no archive of {asked} can be restored: {'; '.join(candidates.unrestorable)}{unreachable}")
    if not candidates:
        raise RestoreRefused(f"no archive of {asked} was found{unreachable}")
    identities = {c.identity for c in candidates}
    if len(identities) > 1:
        raise RestoreRefused(f"{asked} matches {len(identities)} different patients: {listing}; "
                             "choose one with --archive NAME")
    return candidates[0]  # newest first


def _find_encrypted(institution: Institution, target, backend, name: str, sha256: str, problems: list[str]
                    ) -> TargetArchive | None:
    """The archive the search called ``name`` on an encrypted target, found by decrypting the manifests of the
    archives the index lacks (only that digest's when ``sha256`` is known); None when it is not there."""
    scan = EncryptedScan(institution, target, backend, limit=TARGET_MANIFESTS_LIMIT, digest=sha256)
    for read in scan:
        if read.name == name:
            check_institution(read, institution)
            return read
    problems.extend(scan.problems)
    return None


def ensure_indexed(*, institution: Institution, name: str, actor, sha256: str = "") -> Archive:
    """The Archive row of ``name``; an archive known only on a target is indexed from its sidecars first
    (on an encrypted target, from its decrypted manifest: ``sha256``, when the search gave it, spares
    decrypting the others)."""
    archive = Archive.objects.filter(institution=institution, name=name).first()
    if archive is not None:
        return archive
    problems: list[str] = []
    for target in institution.storage_targets.filter(enabled=True).order_by("priority", "name"):
        try:
            with open_target(target) as backend:
                if target.encrypt_to:
                    read = _find_encrypted(institution, target, backend, name, sha256, problems)
                    if read is None:
                        continue
                    found = read
                elif backend.stat(name + MANIFEST_SUFFIX) is None:
                    continue
                else:
                    found = read_target_archive(backend, target, name)
                check_institution(found, institution)
            with transaction.atomic():  # the index rows and their audit row commit together
                archive, _created, _copy = index_target_archive(institution=institution, found=found)
                record_event(actor=actor, event=Event.ARCHIVE_INDEX, institution=institution.code, mrns=[archive.mrn],
                             obj=archive, detail={"archive": name, "target": target.name, "reason": "restore"})
        except (StorageError, SidecarError) as exc:
            problems.append(f"{target.name}: {exc}")
            continue
        return archive
    raise RestoreRefused(f"no archive named {name} in the index or on the enabled targets of {institution.code}"
                         + (f" ({'; '.join(problems)})" if problems else ""))
