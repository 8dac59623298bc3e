"""Is a pending patient's content already in a safely stored archive (docs/keeping.md)?

Two ways to know, cheapest first:
- the archive's ``source_fingerprint`` (names, sizes and mtimes of the files when packed) equals the
  patient's current fingerprint: the very files were archived;
- the archive's manifest lists the same files (path inside the patient folder, size, sha256) as the
  patient holds now. This catches a copy put back by hand or by Pinnacle's own restore (new mtimes,
  same bytes). Only archives of the patient's MRNs whose packed bytes equal the patient's are looked
  at, and the patient's files are hashed only when names and sizes already agree.

"The patient's MRNs": its MRN and, through the MRN aliases (docs/contracts.md §2.7), every other MRN
of the same patient, so an archive made under an old MRN counts for the folder under the new one as
it would under one MRN; the reason then names both MRNs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Collection

from django.db.models import Exists, OuterRef, Q, QuerySet

from inventory.models import Archive, QuarantinedPatient, TpsPatient
from sites.models import Institution
from pinnacle.reader import scan_patient
from connectors.tps.base import TpsError, TpsSource
from lossdetect.services.alias_graph import MrnAliasGraph

HASH_CHUNK = 1 << 20
MANIFEST_BATCH = 500


@dataclass(frozen=True)
class ArchiveRef:
    pk: int
    name: str
    mrn: str
    source_fingerprint: str
    raw_bytes: int | None
    patient_id: int | None
    originals_moved: bool = False  # a recorded move of the patient's folder into the quarantine


def verified_archives_by_mrn(
    *, institution: Institution, patients: QuerySet[TpsPatient], also_mrns: Collection[str] = ()
) -> dict[str, list[ArchiveRef]]:
    """Safely stored archives of the institution whose MRN is one of ``patients``' or of ``also_mrns``
    (their other MRNs through the aliases; one query). An archive that lost its copies is no reason to
    hold a patient back: it is archived again."""
    moved = QuarantinedPatient.objects.filter(archive=OuterRef("pk"), moved_at__isnull=False)
    mrns = Q(mrn__in=patients.exclude(mrn="").values("mrn"))
    if also_mrns:
        mrns |= Q(mrn__in=sorted(also_mrns))
    rows = (Archive.objects.filter(mrns, institution=institution, status=Archive.Status.VERIFIED).safely_stored()
            .annotate(originals_moved=Exists(moved))
            .values_list("pk", "name", "mrn", "source_fingerprint", "raw_bytes", "patient_id", "originals_moved")
            .order_by("pk"))
    result: dict[str, list[ArchiveRef]] = {}
    for row in rows:
        ref = ArchiveRef(*row)
        result.setdefault(ref.mrn.strip(), []).append(ref)
    return result


def manifests(archive_ids: list[int]) -> dict[int, dict]:
    """The manifests of a few archives, in batches."""
    found: dict[int, dict] = {}
    for start in range(0, len(archive_ids), MANIFEST_BATCH):
        found.update(Archive.objects.filter(pk__in=archive_ids[start:start + MANIFEST_BATCH])
                     .values_list("pk", "manifest"))
    return found


def _inside_patient(path: str) -> str:
    """``Institution_1/Mount_0/Patient_7/Plan_0/plan.Trial`` -> ``Plan_0/plan.Trial``."""
    parts = path.split("/", 3)
    return parts[3] if len(parts) == 4 else path


def _manifest_files(manifest: dict) -> dict[str, tuple[int, str]] | None:
    try:
        return {_inside_patient(str(f["path"])): (int(f["size"]), str(f["sha256"])) for f in manifest["files"]}
    except (KeyError, TypeError, ValueError):
        return None  # an odd manifest proves nothing


def same_content(source: TpsSource, tps_path: str, manifest: dict) -> bool:
    """True when the patient folder holds exactly the manifest's files, byte for byte.

    Raises ``TpsError`` when the folder cannot be read (the caller reports "unknown").
    """
    expected = _manifest_files(manifest)
    if not expected:
        return False
    scan = scan_patient(source, tps_path)
    current = {_inside_patient(f.path): f for f in scan.files}
    if set(current) != set(expected) or any(current[p].size != expected[p][0] for p in current):
        return False
    for inside, info in current.items():
        digest = hashlib.sha256()
        with source.open_read(info.path) as stream:
            while data := stream.read(HASH_CHUNK):
                digest.update(data)
        if digest.hexdigest() != expected[inside][1]:
            return False
    return True


def _under(archive: ArchiveRef, mrn: str) -> str:
    """Both numbers when the archive was made under another MRN of the patient (an MRN alias)."""
    if archive.mrn.strip() == mrn.strip():
        return ""
    return f" (archived under MRN {archive.mrn.strip()!r}, an MRN alias of this patient's {mrn.strip()!r})"


class DuplicateFinder:
    """Duplicate checks for one run: the archive index loaded once, the TPS opened only if needed.
    ``aliases``: the institution's MRN aliases (none: archives of the same MRN only)."""

    def __init__(self, archives_by_mrn: dict[str, list[ArchiveRef]], open_source: Callable[[], TpsSource],
                 aliases: MrnAliasGraph | None = None):
        self.archives_by_mrn = archives_by_mrn
        self.aliases = aliases or MrnAliasGraph()
        self._open_source = open_source
        self._source: TpsSource | None = None
        self.warnings: list[str] = []

    def archives_of(self, mrn: str) -> list[ArchiveRef]:
        """The archives of every MRN of ``mrn``'s patient, oldest first (none for an empty MRN)."""
        if not mrn.strip():
            return []
        found = [a for other in self.aliases.mrns_of(mrn) for a in self.archives_by_mrn.get(other, [])]
        return sorted(found, key=lambda archive: archive.pk)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def plan(self, *, mrn: str, fingerprint: str, total_bytes: int) -> tuple[str | None, list[ArchiveRef]]:
        """(reason when the fingerprint already proves a duplicate, archives whose content must be compared)."""
        archives = self.archives_of(mrn)
        for archive in archives:
            if fingerprint and archive.source_fingerprint == fingerprint:
                return (f"the same files (names, sizes, times) are in verified archive {archive.name}"
                        f"{_under(archive, mrn)}", [])
        return None, [a for a in archives if a.raw_bytes is None or a.raw_bytes == total_bytes]

    def interrupted_removal(self, *, mrn: str, patient_pk: int, fingerprint: str) -> str | None:
        """The reason when this very folder, unchanged, was archived and its originals never moved: a run
        stopped between verifying and removing. Such a patient is not a duplicate but unfinished work:
        the archiver takes it again, measures the copies on their targets again and finishes the removal.
        When the originals did move, the folder is the archive put back (a restore not yet marked, one that
        stopped after moving the patient into place): a duplicate, never taken away from the physicist."""
        for archive in self.archives_of(mrn):
            if (fingerprint and archive.patient_id == patient_pk and archive.source_fingerprint == fingerprint
                    and not archive.originals_moved):
                return (f"archived in {archive.name}{_under(archive, mrn)} by a run that stopped before moving the "
                        "originals: the next run checks the copies on their targets again and finishes the removal")
        return None

    def compare(self, *, tps_path: str, candidates: list[ArchiveRef], manifests_by_pk: dict[int, dict],
                mrn: str = "") -> str | None:
        """The reason when one candidate's manifest matches the patient's files, byte for byte (``mrn``: the
        patient's, to name both numbers when the archive has another)."""
        for archive in candidates:
            manifest = manifests_by_pk.get(archive.pk)
            if not manifest:
                continue
            try:
                if self._source is None:
                    self._source = self._open_source()
                if same_content(self._source, tps_path, manifest):
                    return (f"identical content (every file's sha256) is in verified archive {archive.name}"
                            f"{_under(archive, mrn) if mrn else ''}")
            except TpsError as exc:
                self.warnings.append(f"{tps_path}: could not compare with archive {archive.name}: {exc}")
                return None
        return None
