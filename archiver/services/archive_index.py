"""The archive index rebuilt from the targets: ``.manifest.json`` and ``.sha256`` beside each archive.

The files on the storage targets are canonical and the database is an index of them (docs/contracts.md
§4.3). This module reads one archive's sidecars into ``Archive``/``ArchivedPlan``/``ArchiveCopy`` rows,
for ``manage.py rebuild_index`` (every archive of every enabled target, the day the database is
lost) and for a restore of an archive the database does not know. A copy indexed here is
``uploaded`` until a fixity check measures it (``verify=True`` runs the check at once).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from inventory.models import Archive, ArchiveCopy, ArchivedPlan, FixityCheck
from sites.models import Institution, StorageTarget
from archiver.faults import checkpoint
from archiver.naming import parse_archive_name
from archiver.packing.manifest import FORMAT
from connectors.storage import StorageError
from sites.connections import open_target
from connectors.storage.base import StorageBackend
from audit.events import Event
from audit.services import record_event

MANIFEST_SUFFIX = ".manifest.json"
SHA256_SUFFIX = ".sha256"
MANIFEST_LIMIT = 64 << 20  # a manifest lists files, not their content: anything larger is not one
PATIENT_PATH = re.compile(r"Institution_\d+/Mount_\d+/Patient_(\d+)")
_SIDECAR = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


class SidecarError(Exception):
    """One archive's sidecars cannot be indexed; the message names the target and the file."""


@dataclass
class TargetArchive:
    """An archive as its target describes it: the file, its digest sidecar and its manifest."""

    target: StorageTarget
    name: str
    size: int | None  # None: an encrypted target's archive, whose plain size is known once decrypted
    sha256: str
    manifest: dict
    path: str = ""  # the object on the target, when it is not ``name`` (an encrypted target's)


@dataclass
class IndexReport:
    institution: str
    targets: list[str] = field(default_factory=list)  # listed successfully
    archives_seen: int = 0
    created: list[str] = field(default_factory=list)
    known: int = 0  # already in the index with the same digest
    copies_added: int = 0
    verified: int = 0
    failed_checks: int = 0
    problems: list[str] = field(default_factory=list)
    created_mrns: list[str] = field(default_factory=list)
    renditions_seen: int = 0  # ``<archive>.dicom.zip`` renditions beside the archives (never taken for archives)
    renditions_created: int = 0
    rendition_copies_added: int = 0
    renditions_verified: int = 0

    def counts(self) -> dict[str, int]:
        return {"targets": len(self.targets), "archives_seen": self.archives_seen, "created": len(self.created),
                "known": self.known, "copies_added": self.copies_added, "verified": self.verified,
                "failed_checks": self.failed_checks, "problems": len(self.problems),
                "renditions_seen": self.renditions_seen, "renditions_created": self.renditions_created,
                "rendition_copies_added": self.rendition_copies_added,
                "renditions_verified": self.renditions_verified}


# --- reading the sidecars ------------------------------------------------------------------------------


def manifest_patient_path(manifest: dict) -> str:
    """The archived patient's folder, ``Institution_<I>/Mount_<M>/Patient_<P>``; "" when the manifest names none.

    A manifest with only the keys docs/contracts.md §4.2 promises has no ``patient.tps_path``:
    the files' common folder is used.
    """
    patient = manifest.get("patient") if isinstance(manifest.get("patient"), dict) else {}
    path = patient.get("tps_path") if isinstance(patient.get("tps_path"), str) else ""
    if not path:
        folders = {"/".join(str(f.get("path", "")).split("/")[:3]) for f in manifest.get("files") or []
                   if isinstance(f, dict)}
        path = folders.pop() if len(folders) == 1 else ""
    return path if PATIENT_PATH.fullmatch(path) else ""


def check_manifest(manifest, *, where: str) -> dict:
    """The manifest if it has what PDAS relies on, else ``SidecarError`` naming the field."""
    if not isinstance(manifest, dict):
        raise SidecarError(f"{where}: not a JSON object")
    if manifest.get("format") != FORMAT:
        raise SidecarError(f"{where}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    patient = manifest.get("patient")
    if not isinstance(patient, dict) or not isinstance(patient.get("mrn"), str):
        raise SidecarError(f"{where}: patient.mrn is missing")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise SidecarError(f"{where}: files is missing or empty")
    for index, entry in enumerate(files, start=1):
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("size"), int)
                and isinstance(entry.get("sha256"), str)):
            raise SidecarError(f"{where}: files[{index}] lacks path, size or sha256")
    if not isinstance(manifest.get("plans", []), list):
        raise SidecarError(f"{where}: plans is not a list")
    if not manifest_patient_path(manifest):
        raise SidecarError(f"{where}: names no Institution_<I>/Mount_<M>/Patient_<P> folder")
    return manifest


def parse_sha256_sidecar(data: bytes, *, name: str, where: str) -> str:
    """The digest of a ``sha256sum``-format sidecar that names ``name``."""
    try:
        line = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SidecarError(f"{where}: not UTF-8 text") from None
    match = _SIDECAR.fullmatch(line)
    if not match:
        raise SidecarError(f"{where}: not in sha256sum format ('<64 hex digits> *<name>')")
    if match.group(2) != name:
        raise SidecarError(f"{where}: names {match.group(2)!r}, not {name!r}")
    return match.group(1).lower()


def read_target_archive(backend: StorageBackend, target: StorageTarget, name: str) -> TargetArchive:
    """Read one archive's sidecars and size from an open target; ``SidecarError`` says what is wrong."""
    where = f"{target.name}: {name}"
    stat = backend.stat(name)
    if stat is None:
        raise SidecarError(f"{where}: the archive file is missing (only its sidecars are there)")
    manifest_name = name + MANIFEST_SUFFIX
    manifest_stat = backend.stat(manifest_name)
    if manifest_stat is None:
        raise SidecarError(f"{where}{MANIFEST_SUFFIX}: missing")
    if manifest_stat.size > MANIFEST_LIMIT:
        raise SidecarError(f"{where}{MANIFEST_SUFFIX}: {manifest_stat.size} bytes, larger than any manifest")
    try:
        manifest = json.loads(backend.read_bytes(manifest_name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"{where}{MANIFEST_SUFFIX}: not valid JSON ({exc})") from None
    check_manifest(manifest, where=f"{where}{MANIFEST_SUFFIX}")
    if backend.stat(name + SHA256_SUFFIX) is None:
        raise SidecarError(f"{where}{SHA256_SUFFIX}: missing")
    digest = parse_sha256_sidecar(backend.read_bytes(name + SHA256_SUFFIX), name=name,
                                  where=f"{where}{SHA256_SUFFIX}")
    return TargetArchive(target=target, name=name, size=stat.size, sha256=digest, manifest=manifest)


def archive_names(backend: StorageBackend) -> list[str]:
    """Archives on a target that have a manifest beside them (by their names)."""
    return sorted(f.name[: -len(MANIFEST_SUFFIX)] for f in backend.list_files()
                  if f.name.endswith(MANIFEST_SUFFIX) and parse_archive_name(f.name[: -len(MANIFEST_SUFFIX)]))


# --- writing the index -----------------------------------------------------------------------------------


def _aware(text, institution: Institution) -> dt.datetime | None:
    """A manifest time: ISO 8601, with an offset (``packed_at``) or naive site time (plan times)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if timezone.is_aware(value) else value.replace(tzinfo=institution.zone)


def _codec(manifest: dict, name: str) -> str:
    if manifest.get("codec") in ("gzip", "zstd"):
        return manifest["codec"]
    parts = parse_archive_name(name)
    return parts["codec"] if parts else "gzip"


@transaction.atomic
def index_target_archive(*, institution: Institution, found: TargetArchive) -> tuple[Archive, bool, bool]:
    """The Archive row of ``found`` (created when missing) and its copy on ``found.target``.

    Returns (archive, archive created, copy created). A row of that name with another digest is
    never changed: ``SidecarError`` names the conflict.
    """
    manifest, patient = found.manifest, found.manifest["patient"]
    archive = Archive.objects.select_for_update().filter(institution=institution, name=found.name).first()
    created = archive is None
    if created:
        archive = Archive.objects.create(
            institution=institution, name=found.name, mrn=patient["mrn"].strip(),
            last_name=str(patient.get("last_name") or ""), first_name=str(patient.get("first_name") or ""),
            group=str(manifest.get("group") or ""), tps_path=manifest_patient_path(manifest),
            codec=_codec(manifest, found.name), size=found.size,
            raw_bytes=sum(f["size"] for f in manifest["files"]), checksum=found.sha256, manifest=manifest,
            packed_at=_aware(manifest.get("packed_at"), institution), status=Archive.Status.PACKED,
        )
        ArchivedPlan.objects.bulk_create([
            ArchivedPlan(archive=archive, plan_id=int(p["plan_id"]), name=str(p.get("name") or ""),
                         trial_names=[str(t) for t in p.get("trials") or []],
                         created=_aware(p.get("created"), institution), edited=_aware(p.get("edited"), institution))
            for p in manifest.get("plans", []) if isinstance(p, dict) and isinstance(p.get("plan_id"), int)
        ])
    elif archive.checksum != found.sha256 or (archive.size is not None and found.size is not None
                                              and archive.size != found.size):
        raise SidecarError(f"{found.target.name}: {found.name}: the index records another digest or size for this "
                          "name; not changed (check both copies)")
    _copy, copy_created = ArchiveCopy.objects.get_or_create(
        archive=archive, target=found.target,
        defaults={"path": found.path or found.name, "size": found.size, "status": ArchiveCopy.Status.UPLOADED},
    )
    return archive, created, copy_created


def verify_indexed_copy(*, archive: Archive, target: StorageTarget, backend: StorageBackend) -> bool:
    """Run a fixity check on the copy; True when it passed.

    An archive the index learnt from a target (not yet ``verified``) has only its own sidecar's word
    for its digest: the copy is read back whole against its manifest (``measure_content``), and only
    that makes the archive ``verified``; an archive that fails it is recorded ``failed``. An archive
    PDAS verified when it packed it has its digest from then: measuring the copy is enough."""
    from archiver.services.transfer import measure_content, measure_copy, record_measurement

    copy = ArchiveCopy.objects.select_related("archive").get(archive=archive, target=target)
    learnt = archive.status != Archive.Status.VERIFIED
    found = (measure_content if learnt else measure_copy)(copy=copy, backend=backend)
    with transaction.atomic():
        check = record_measurement(copy=copy, found=found)
        passed = check.outcome == FixityCheck.Outcome.PASS
        if learnt and passed:
            Archive.objects.filter(pk=archive.pk).exclude(status=Archive.Status.VERIFIED).update(
                status=Archive.Status.VERIFIED, verified_at=timezone.now())
            if found.archive_size is not None:  # an encrypted target's archive: its size is known now
                Archive.objects.filter(pk=archive.pk, size__isnull=True).update(size=found.archive_size)
                ArchiveCopy.objects.filter(pk=copy.pk).update(size=found.archive_size, checksum=archive.checksum)
        elif learnt and check.outcome == FixityCheck.Outcome.FAIL and found.checksum == archive.checksum:
            # The bytes are the ones its sidecar names, and they are not the archive its manifest
            # describes: every copy of that digest is the same bad archive.
            Archive.objects.filter(pk=archive.pk, status=Archive.Status.PACKED).update(status=Archive.Status.FAILED)
    return passed


def rebuild_index(*, institution: Institution, actor, verify: bool = False) -> IndexReport:
    """Index every archive on every enabled target of the institution; idempotent.

    A target that cannot be listed is a problem in the report, never "no archives". With ``verify``
    every copy not yet verified is measured on its target (a FixityCheck row each). Each archive
    added is audited (``archive.index``) in the transaction that adds it; the rebuild ends with one
    more ``archive.index`` row for the whole run (counts, problems).
    """
    report = IndexReport(institution=institution.code)
    targets = list(institution.storage_targets.filter(enabled=True).order_by("priority", "name"))
    if not targets:
        report.problems.append(f"institution {institution.code} has no enabled storage target")
    for target in targets:
        try:
            with open_target(target) as backend:
                if target.encrypt_to:
                    _index_encrypted_target(institution, target, backend, report, verify=verify, actor=actor)
                    continue
                names = archive_names(backend)
                report.targets.append(target.name)
                for name in names:
                    report.archives_seen += 1
                    _index_one(institution, target, backend, name, report, verify=verify, actor=actor)
                from archiver.services.rendition_index import index_target_renditions  # it imports this module

                index_target_renditions(institution=institution, target=target, backend=backend, report=report,
                                        verify=verify, actor=actor)
        except StorageError as exc:
            report.problems.append(f"{target.name}: {exc}")
    record_event(actor=actor, event=Event.ARCHIVE_INDEX, institution=institution.code, mrns=report.created_mrns,
                 obj=institution, outcome="failed" if report.problems else "ok",
                 detail={**report.counts(), "problems": report.problems[:50], "verify": verify})
    return report


def _index_encrypted_target(institution: Institution, target: StorageTarget, backend: StorageBackend,
                            report: IndexReport, *, verify: bool, actor) -> None:
    """Index an encrypted target: its object names show no patient, so each manifest is decrypted with the
    target's identity. Without one, the target is a problem line naming it (never "no archives")."""
    from connectors.errors import SecretError
    from connectors.storage.encrypted import IdentityMissing, encrypted_archives
    from sites.connections import target_identities

    from archiver.services.transfer import no_identity_reason

    held = encrypted_archives(backend)
    try:
        identities = target_identities(target)
    except SecretError as exc:
        reason = no_identity_reason(target) if isinstance(exc, IdentityMissing) else str(exc)
        report.problems.append(f"{target.name}: {reason}: its {len(held)} archive(s) cannot be read, none indexed")
        return
    report.targets.append(target.name)
    for names in held:
        report.archives_seen += 1
        _index_one(institution, target, backend, names.archive, report, verify=verify, actor=actor,
                   read=lambda names=names: read_encrypted_archive(backend, target, names, identities))


def read_encrypted_archive(backend: StorageBackend, target: StorageTarget, names, identities: list) -> TargetArchive:
    """One archive of an encrypted target, from its decrypted manifest. Its digest is the one its objects
    are named after; its name is the one the index already gives that digest, else the one the naming
    rules give its patient and plans (with ``_2``, ``_3`` ... past a name the index holds for another
    digest)."""
    where = f"{target.name}: {names.manifest}"
    try:
        manifest = json.loads(read_manifest_plain(backend, names, identities).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"{where}: not valid JSON once decrypted ({exc})") from None
    check_manifest(manifest, where=where)
    return TargetArchive(target=target, name=_encrypted_archive_name(target.institution, manifest, names),
                         size=None, sha256=names.sha256, manifest=manifest, path=names.archive)


def read_manifest_plain(backend: StorageBackend, names, identities: list) -> bytes:
    from connectors.storage.encrypted import read_manifest

    stat = backend.stat(names.manifest)
    if stat is None:
        raise SidecarError(f"{backend.url}: {names.manifest}: missing")
    if stat.size > MANIFEST_LIMIT:
        raise SidecarError(f"{names.manifest}: {stat.size} bytes, larger than any manifest")
    return read_manifest(backend, names, identities)


def _encrypted_archive_name(institution: Institution, manifest: dict, names) -> str:
    from archiver.naming import archive_name

    known = Archive.objects.filter(institution=institution, checksum=names.sha256).values_list("name", flat=True)
    if known:
        return known[0]
    patient = manifest["patient"]
    edits = [_aware(p.get("edited"), institution) for p in manifest.get("plans", []) if isinstance(p, dict)]
    edited = max((e for e in edits if e is not None), default=None) or _aware(manifest.get("packed_at"), institution)
    local = timezone.localtime(edited, institution.zone) if edited else dt.datetime(1970, 1, 1)
    codec = "zstd" if names.extension == ".tar.zst" else "gzip"
    clash = 1
    while True:
        name = archive_name(last_name=str(patient.get("last_name") or ""), first_name=str(patient.get("first_name")
                            or ""), mrn=patient["mrn"].strip(), edited=local, codec=codec, clash=clash)
        if not Archive.objects.filter(institution=institution, name=name).exclude(checksum=names.sha256).exists():
            return name
        clash += 1


def check_institution(found: TargetArchive, institution: Institution) -> None:
    """``SidecarError`` unless the archive's manifest is the institution's (or names none: packed before
    manifests named one). Every path that learns an archive from a target asks this (rebuild_index, the
    restore search, a restore by name), so a file of another institution on a shared array is never shown,
    indexed or restored here."""
    owner = found.manifest.get("institution")
    if owner not in (None, "", institution.code):
        raise SidecarError(f"{found.target.name}: {found.name}: the manifest belongs to institution {owner!r}, "
                           f"not {institution.code!r}; left alone")


def _index_one(institution: Institution, target: StorageTarget, backend: StorageBackend, name: str,
               report: IndexReport, *, verify: bool, actor, read=None) -> None:
    try:
        found = read() if read is not None else read_target_archive(backend, target, name)
        name = found.name
        check_institution(found, institution)
        with transaction.atomic():  # an archive added to the index and its audit row commit together
            archive, created, copy_created = index_target_archive(institution=institution, found=found)
            if created:
                record_event(actor=actor, event=Event.ARCHIVE_INDEX, institution=institution.code,
                             mrns=[archive.mrn], obj=archive,
                             detail={"archive": name, "target": target.name, "reason": "rebuild"})
    except SidecarError as exc:
        report.problems.append(str(exc))
        return
    except StorageError as exc:
        report.problems.append(f"{target.name}: {name}: {exc}")
        return
    if created:
        report.created.append(name)
        report.created_mrns.append(archive.mrn)
    else:
        report.known += 1
    report.copies_added += copy_created
    checkpoint("rebuild_indexed")
    if verify and archive.copies.filter(target=target).exclude(status=ArchiveCopy.Status.VERIFIED).exists():
        if verify_indexed_copy(archive=archive, target=target, backend=backend):
            report.verified += 1
        else:
            report.failed_checks += 1
            check = FixityCheck.objects.filter(copy__archive=archive, copy__target=target).order_by("-pk").first()
            reason = f" ({check.reason[:300]})" if check and check.reason else ""
            report.problems.append(f"{target.name}: {name}: fixity check failed{reason}")
