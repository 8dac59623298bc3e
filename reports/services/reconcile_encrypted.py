"""Reconciling an encrypted target (``encrypt_to``), whose objects are named after each archive's SHA-256.

No object name there shows a patient or a PDAS archive name (``<sha256>.tar.gz.age``, docs/archive-format.md),
so the names cannot be matched as on a plain target. An encrypted archive object is matched to the
archive through the copy PDAS recorded on that target (``ArchiveCopy.path``, else the archive of that
digest), and its size (and a listed SHA-256) compared with what was recorded of the *encrypted* object
(``encrypted_size``, ``encrypted_sha256``), not with the archive's. The encrypted manifests and every
``.sha256`` are sidecars; any other name goes through the plain matching.
"""
from __future__ import annotations

from inventory.models import Archive, ArchiveCopy
from sites.models import Institution, StorageTarget
from connectors.storage.encrypted import AGE, MANIFEST, EncryptedNames
from reports.models import ReconciliationEntry
from reports.services.reconcile import ListedFile, _entry

Outcome = ReconciliationEntry.Outcome
_ENCRYPTED_MANIFEST = MANIFEST + AGE


def match_encrypted(files: list[ListedFile], *, institution: Institution, target: StorageTarget
                    ) -> tuple[list[ListedFile], list[ReconciliationEntry], set[str], int]:
    """(the files left for the plain matching, entries of the encrypted objects, the PDAS archive names they
    matched, the number of encrypted manifests left out as sidecars)."""
    # object name -> (archive id, archive name, MRN, encrypted size, encrypted SHA-256); None: no copy recorded
    copies = {path: (pk, name, mrn, size, sha) for path, pk, name, mrn, size, sha in
              ArchiveCopy.objects.filter(target=target).values_list(
                  "path", "archive_id", "archive__name", "archive__mrn", "encrypted_size", "encrypted_sha256")}
    rest: list[ListedFile] = []
    entries: list[ReconciliationEntry] = []
    seen: set[str] = set()
    objects: dict[str, ListedFile] = {}
    skipped = 0
    for listed in files:
        name = listed.file_name
        names = None if listed.problem else EncryptedNames.from_object(name)
        if names is None:
            if not listed.problem and name.endswith(_ENCRYPTED_MANIFEST):
                skipped += 1
            else:
                rest.append(listed)
            continue
        if name in objects:
            entries.append(_entry(listed, Outcome.DUPLICATE, f"the same name as {objects[name].path}"))
            continue
        objects[name] = listed
        known = copies.get(name) or _archive_of_digest(institution, names.sha256)
        if known is None:
            outcome = Outcome.UNREADABLE if listed.size == 0 else Outcome.ONLY_IN_LISTING
            entries.append(_entry(listed, outcome, "an encrypted archive PDAS has no record of (named after its "
                                  "SHA-256 only; rebuild_index with the target's identity reads its manifest)"))
            continue
        archive_id, archive_name, mrn, size, sha256 = known
        seen.add(archive_name)
        entries.append(_compare_encrypted(listed, archive_id=archive_id, archive_name=archive_name, mrn=mrn,
                                          size=size, sha256=sha256, recorded=name in copies, target=target))
    return rest, entries, seen, skipped


def _archive_of_digest(institution: Institution, sha256: str) -> tuple | None:
    """The archive of that digest when PDAS records no copy of it on the target: the object is the archive's,
    but what was uploaded there is not on record, so nothing of it can be compared."""
    found = (Archive.objects.filter(institution=institution, checksum=sha256)
             .values_list("id", "name", "mrn").first())
    return (*found, None, "") if found else None


def _compare_encrypted(listed: ListedFile, *, archive_id: int, archive_name: str, mrn: str, size: int | None,
                       sha256: str, recorded: bool, target: StorageTarget) -> ReconciliationEntry:
    fields = {"archive_id": archive_id, "archive_name": archive_name[:255], "mrn": mrn}
    if not recorded:
        return _entry(listed, Outcome.MATCHED, f"encrypted object of this archive; PDAS records no copy on "
                      f"{target.name}, so its size was not compared", **fields)
    if size is not None and listed.size != size:
        return _entry(listed, Outcome.SIZE_MISMATCH, f"listed {listed.size} bytes, PDAS recorded {size} for the "
                      "encrypted object", **fields)
    if listed.sha256 and sha256 and listed.sha256 != sha256.lower():
        return _entry(listed, Outcome.CHECKSUM_MISMATCH, f"listed sha256 {listed.sha256[:12]}…, PDAS recorded "
                      f"{sha256[:12]}… for the encrypted object", **fields)
    return _entry(listed, Outcome.MATCHED, "encrypted object; compared with the encrypted size"
                  + ("" if listed.sha256 else " (the listing has no checksum)"), **fields)
