"""What "converged" means after a crash or an error in the middle of archiving: one list of violations.

Used by the crash tests that stop archiving at each step (``test_archive_crash_raise.py``,
``test_postgres_restart.py``) and by the soak test (``tests/soak``). Each function returns the violations
it found, as sentences, so a test asserts ``== []`` and shows all of them at once:

- ``lost``: every patient is whole in the TPS, or it was moved: whole in the quarantine, in an archive
  ``verified`` whose copy on every enabled target hashes right now and whose manifest holds exactly the
  patient's files, and that copy was measured on every target by the attempt that moved the originals
  (between that attempt's start and the recorded move), never trusted from an earlier one;
- ``duplicates``: at most one verified archive of one patient's content, and on every target only the
  files of archives the index knows there (no second archive of the same content, no orphan);
- ``litter``: no temporary upload (``.name.part``) on a target, nothing left in the TPS's ``.pdas-work``;
- ``unfinished``: no job (archive run, restore, curation, loss scan, reconciliation) and no patient task
  still open.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from archiver.models import PatientArchiveTask
from inventory.models import Archive, ArchiveCopy, FixityCheck, QuarantinedPatient
from sites.models import Institution

WORK_DIR = ".pdas-work"


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its path relative to it (empty when there is no folder)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while data := handle.read(1 << 20):
            digest.update(data)
    return digest.hexdigest()


def lost(*, institution: Institution, root: Path, targets: dict[str, Path],
         patients: dict[str, dict[str, bytes]], settled: bool = True) -> list[str]:
    """``patients``: each patient's folder (relative to the TPS root) and its files as written.

    ``settled=False`` is the weaker promise that holds at every moment, even while a copy is damaged and
    not yet repaired: a moved patient is whole in the quarantine or in at least one copy."""
    found: list[str] = []
    for path, files in patients.items():
        folder = root / path
        if folder.exists():
            if tree(folder) != files:
                found.append(f"{path}: in the TPS but not whole")
            continue
        row = (QuarantinedPatient.objects.filter(institution=institution, tps_path=path, moved_at__isnull=False,
                                                 purged_at__isnull=True)
               .select_related("archive").order_by("-moved_at").first())
        if row is None and not settled:  # a move under way, or one a crash left unrecorded for recovery
            row = (QuarantinedPatient.objects.filter(institution=institution, tps_path=path, purged_at__isnull=True)
                   .select_related("archive").order_by("-pk").first())
        if row is None:
            found.append(f"{path}: gone from the TPS and no recorded move to the quarantine")
            continue
        in_quarantine = tree(root / row.quarantine_path) == files
        if settled:
            if not in_quarantine:
                found.append(f"{path}: not whole in the quarantine ({row.quarantine_path})")
            found += _archive_holds(row, path, files, targets)
        elif not in_quarantine and not _one_copy_whole(row.archive, path, files, targets):
            found.append(f"{path}: neither whole in the quarantine nor in one whole copy of {row.archive.name}")
    return found


def _manifest_is(archive: Archive, path: str, files: dict[str, bytes]) -> bool:
    manifest = {f["path"].removeprefix(path + "/"): f["sha256"] for f in archive.manifest.get("files", [])}
    return manifest == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def _one_copy_whole(archive: Archive, path: str, files: dict[str, bytes], targets: dict[str, Path]) -> bool:
    return _manifest_is(archive, path, files) and any(
        (folder / archive.name).is_file() and _sha256(folder / archive.name) == archive.checksum
        for folder in targets.values())


def _archive_holds(row: QuarantinedPatient, path: str, files: dict[str, bytes], targets: dict[str, Path]) -> list[str]:
    archive = row.archive
    found: list[str] = []
    if archive.status != Archive.Status.VERIFIED:
        found.append(f"{path}: moved, but its archive {archive.name} is {archive.status}")
    if not _manifest_is(archive, path, files):
        found.append(f"{path}: the manifest of {archive.name} differs from the patient's files")
    # The attempt that moved the originals: the patient's last task started before the move was recorded
    # (a recovery may record a move a dead attempt made).
    mover = (PatientArchiveTask.objects.filter(patient=archive.patient, started_at__lte=row.moved_at)
             .order_by("-started_at").first())
    for copy in archive.copies.filter(target__enabled=True).select_related("target"):
        folder = targets.get(copy.target.name)
        stored = folder / archive.name if folder is not None else None
        if stored is None or not stored.is_file():
            found.append(f"{path}: {archive.name} is not on {copy.target.name}")
        elif _sha256(stored) != archive.checksum:
            found.append(f"{path}: {archive.name} on {copy.target.name} does not hash to its digest")
        if copy.status != ArchiveCopy.Status.VERIFIED:
            found.append(f"{path}: the copy on {copy.target.name} is {copy.status}")
        measured = mover is not None and copy.fixity_checks.filter(
            outcome=FixityCheck.Outcome.PASS, checked_at__gte=mover.started_at, checked_at__lte=row.moved_at,
        ).exclude(method=FixityCheck.Method.LISTED).exists()
        if not measured:
            found.append(f"{path}: the copy on {copy.target.name} was not measured by the attempt that moved it")
    expected = set(row.institution.storage_targets.filter(enabled=True).values_list("name", flat=True))
    missing = expected - set(archive.copies.values_list("target__name", flat=True))
    found += [f"{path}: {archive.name} has no copy on {name}" for name in sorted(missing)]
    return found


def duplicates(*, institution: Institution, targets: dict[str, Path]) -> list[str]:
    found: list[str] = []
    verified = Archive.objects.filter(institution=institution, status=Archive.Status.VERIFIED)
    twice = Counter(verified.values_list("patient_id", "source_fingerprint"))
    found += [f"patient {patient}: {count} verified archives of the same content"
              for (patient, _), count in twice.items() if count > 1]
    for name, folder in targets.items():
        known = dict(ArchiveCopy.objects.filter(target__institution=institution, target__name=name)
                     .values_list("archive__name", "archive__patient_id"))
        stored = [p.name for p in folder.iterdir() if p.name.endswith(".tar.gz") and not p.name.startswith(".")]
        found += [f"{name}: {file} is on the target but the index has no copy of it there"
                  for file in stored if file not in known]
        per_content = Counter(Archive.objects.filter(institution=institution, name__in=stored)
                              .values_list("patient_id", "source_fingerprint"))
        found += [f"{name}: {count} archives of the same content of patient {patient}"
                  for (patient, _), count in per_content.items() if count > 1]
    return found


def litter(*, root: Path, targets: dict[str, Path], downloads: Path | None = None) -> list[str]:
    """``downloads``: where restores download archives (``DATA_DIR/restore``), when a test restores."""
    found = [f"{name}: temporary file {p.name}" for name, folder in targets.items()
             for p in folder.iterdir() if p.name.startswith(".")]
    work = root / WORK_DIR
    if work.is_dir():
        found += [f"{WORK_DIR}: {p.name} left" for p in work.iterdir()]
    if downloads is not None and downloads.is_dir():
        found += [f"restore download {p.name} left" for p in downloads.iterdir()]
    return found


def unfinished(*, institution: Institution) -> list[str]:
    """No job of the institution still queued or running (archive runs, restores, curations, loss scans,
    reconciliations), and no patient task pending."""
    from pdas.services.jobs import JOB_MODELS

    found = [f"{model.__name__} {job.pk} is still {job.status}" for model in JOB_MODELS
             for job in model.objects.unfinished().filter(institution=institution)]
    found += [f"patient task {task.pk} ({task.patient.tps_path}) is still pending"
              for task in PatientArchiveTask.objects.filter(run__institution=institution, result="pending")
              .select_related("patient")]
    return found


def violations(*, institution: Institution, root: Path, targets: dict[str, Path],
               patients: dict[str, dict[str, bytes]]) -> list[str]:
    """All of the above."""
    return (lost(institution=institution, root=root, targets=targets, patients=patients)
            + duplicates(institution=institution, targets=targets) + litter(root=root, targets=targets)
            + unfinished(institution=institution))
