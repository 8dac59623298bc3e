"""The DICOM-RT rendition of an archive (docs/rendition.md, "The rendition job").

A derived reference copy, made in the background per archive and never touching archiving: the archive is
read back from a verified copy through the restore path (``create_restore`` into a scratch folder: the copy's
digest checked against the record and its ``.sha256``, every member against the manifest, the tar extracted
by the restore's own extraction), compared once more with its manifest, converted (``pinnacle.dicom``),
validated, zipped as ``<archive name>.dicom.zip`` with a ``rendition.json`` inside, and stored beside the
archive on every enabled target of the institution with its two sidecars (``.sha256`` and
``.manifest.json``, the same JSON). Making it again replaces these three objects only; the archive and its
sidecars are never written. An encrypted target gets no rendition: plain patient data never goes there.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from archiver.models import RestoreRecord
from archiver.services.archive_index import manifest_patient_path
from archiver.services.drills import compare_tree
from archiver.services.restore.errors import RestoreError
from archiver.services.restore.runner import create_restore, execute_restore
from audit.actors import actor_name
from audit.events import Event
from audit.services import record_event
from connectors.errors import SecretError
from connectors.storage.base import StorageBackend, StorageError, is_temporary
from inventory.models import Archive, DicomRendition, RenditionCopy
from pinnacle.dicom.convert import ConversionError, convert_patient
from pinnacle.dicom.validate import validate_rendition
from sites.connections import open_target
from sites.models import Institution, StorageTarget

CHUNK = 1 << 20
SHA256_SIDECAR = ".sha256"
MANIFEST_SIDECAR = ".manifest.json"
INSIDE_JSON = "rendition.json"
STALE_RUNNING = dt.timedelta(hours=6)  # a running rendition older than this was left by a dead worker
Status = DicomRendition.Status


class RenditionFailed(Exception):
    """Why a rendition could not be made: one line naming the archive or file."""


def rendition_objects(name: str) -> tuple[str, str, str]:
    """The three objects of a rendition on a target: the zip and its two sidecars."""
    return name, name + SHA256_SIDECAR, name + MANIFEST_SIDECAR


def request_rendition(*, archive: Archive, actor) -> DicomRendition:
    """The rendition row of ``archive``, ``pending`` (the caller dispatches ``render_dicom_task`` with the
    archive's id). A row that is running is left as it is."""
    rendition, created = DicomRendition.objects.get_or_create(
        archive=archive, defaults={"institution_id": archive.institution_id, "requested_by": actor_name(actor) or "",
                                   "name": DicomRendition.name_for(archive)})
    if not created and rendition.status != Status.RUNNING:
        rendition.status, rendition.requested_by = Status.PENDING, actor_name(actor) or ""
        rendition.save(update_fields=["status", "requested_by"])
    return rendition


def archives_to_render(*, institution: Institution, mrn: str | None = None, force: bool = False):
    """Archives of the institution with a verified copy whose rendition is not made (all of them with ``force``)."""
    archives = Archive.objects.filter(institution=institution).with_verified_copy()
    if mrn:
        archives = archives.filter(mrn=mrn)
    if not force:
        archives = archives.exclude(rendition__status=Status.MADE)
    return archives.order_by("pk")


def _claim(rendition_id: int) -> bool:
    """Mark the rendition running unless another worker has it (a conditional UPDATE)."""
    now = timezone.now()
    free = ~Q(status=Status.RUNNING) | Q(started_at__lt=now - STALE_RUNNING) | Q(started_at__isnull=True)
    return DicomRendition.objects.filter(free, pk=rendition_id).update(
        status=Status.RUNNING, started_at=now, finished_at=None, reason="running") == 1


def make_rendition(*, archive_id: int, force: bool = False) -> DicomRendition:
    """Make (or make again) the rendition of one archive and store it on the institution's targets.

    Resumable: a rendition already ``made`` and stored on every plain enabled target is left as it is
    unless ``force``; one left ``running`` by a dead worker is taken again after ``STALE_RUNNING``."""
    rendition = DicomRendition.objects.select_related("archive", "institution").get(archive_id=archive_id)
    if rendition.status == Status.MADE and not force and not _targets_missing(rendition):
        return rendition
    if not _claim(rendition.pk):
        return rendition
    rendition.refresh_from_db()
    archive = rendition.archive
    scratch_root = Path(settings.DATA_DIR) / "renditions"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"rendition-{rendition.pk}-", dir=scratch_root))
    try:
        zip_path = _build(rendition, scratch)
        copies = _store_everywhere(rendition, zip_path)
        stored = [c for c in copies if c.status == RenditionCopy.Status.STORED]
        if not stored:
            problems = "; ".join(f"{c.target.name}: {c.reason}" for c in copies) or "the institution has no enabled target"
            raise RenditionFailed(f"{rendition.name} was made but stored on no target: {problems}")
        rendition.status, rendition.reason = Status.MADE, _made_reason(rendition, copies)
    except RenditionFailed as exc:
        rendition.status, rendition.reason = Status.FAILED, str(exc)[:4000]
    except Exception as exc:  # noqa: BLE001 - a bug must not leave the row running; the reason says what broke
        rendition.status, rendition.reason = Status.FAILED, f"{archive.name}: {type(exc).__name__}: {exc}"[:4000]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rendition.finished_at = timezone.now()
    with transaction.atomic():
        rendition.save()
        record_event(actor=rendition.requested_by or None, event=Event.RENDITION_MAKE,
                     institution=rendition.institution.code, mrns=[archive.mrn], obj=rendition,
                     outcome="ok" if rendition.status == Status.MADE else "failed",
                     detail={"archive": archive.name, "rendition": rendition.name, "converter": rendition.converter,
                             "converter_version": rendition.converter_version, "objects": rendition.objects_summary,
                             "conversion_failures": len(rendition.conversion_failures),
                             "validation_failures": len(rendition.validation_failures),
                             "targets": {c.target.name: c.status for c in rendition.copies.select_related("target")},
                             "reason": rendition.reason[:1000]})
    return rendition


def _made_reason(rendition: DicomRendition, copies: list[RenditionCopy]) -> str:
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(rendition.objects_summary.items()))
    text = f"{counts}; stored on {', '.join(c.target.name for c in copies if c.status == RenditionCopy.Status.STORED)}"
    others = [f"{c.target.name}: {c.reason}" for c in copies if c.status != RenditionCopy.Status.STORED]
    if rendition.conversion_failures:
        text += f"; {len(rendition.conversion_failures)} objects could not be made"
    if rendition.validation_failures:
        text += f"; {len(rendition.validation_failures)} validation failures"
    return "; ".join([text, *others])


def _targets_missing(rendition: DicomRendition) -> bool:
    stored = set(rendition.copies.filter(status=RenditionCopy.Status.STORED).values_list("target_id", flat=True))
    return any(t.pk not in stored for t in _plain_targets(rendition.institution))


def _plain_targets(institution: Institution) -> list[StorageTarget]:
    return [t for t in institution.storage_targets.filter(enabled=True).order_by("priority", "name")
            if not t.encrypt_to]


# --- making it ----------------------------------------------------------------------------------------------


def _read_archive(rendition: DicomRendition, scratch: Path) -> Path:
    """The archive restored from a verified copy into ``scratch``; the patient folder in it."""
    archive = rendition.archive
    if not Archive.objects.filter(pk=archive.pk).with_verified_copy().exists():
        raise RenditionFailed(f"{archive.name} has no verified copy to read; run check_archives --repair first")
    destination = scratch / "restored"
    record = create_restore(archive=archive, institution=rendition.institution,
                            actor=rendition.requested_by or None, to_dir=destination)
    try:
        execute_restore(record_id=record.pk, raise_errors=True)
    except RestoreError:
        pass  # the reason is on the record
    record.refresh_from_db()
    if record.status != RestoreRecord.Status.DONE:
        raise RenditionFailed(f"{archive.name} could not be read from a verified copy: {record.reason}")
    files, _, problems = compare_tree(destination, archive.manifest)
    if problems:
        raise RenditionFailed(f"{archive.name} read back does not match its manifest: {problems[0]}")
    return destination / manifest_patient_path(archive.manifest)


def _build(rendition: DicomRendition, scratch: Path) -> Path:
    archive = rendition.archive
    patient_dir = _read_archive(rendition, scratch)
    rendition.input_sha256 = archive.checksum
    output = scratch / "dicom"
    try:
        result = convert_patient(patient_dir, output)
    except ConversionError as exc:
        rel = str(exc).replace(str(patient_dir.parent) + "/", "")
        raise RenditionFailed(f"{archive.name}: {rel}") from None
    report = validate_rendition([o.path for o in result.objects])
    rendition.converter, rendition.converter_version = result.converter, result.converter_version
    rendition.objects_summary = dict(sorted(Counter(o.modality for o in result.objects).items()))
    rendition.object_list = [{"file": o.path.relative_to(output).as_posix(), "modality": o.modality,
                              "sop_class_uid": o.sop_class_uid, "sop_instance_uid": o.sop_instance_uid,
                              "source": o.source, **({"caveat": o.caveat} if o.caveat else {})}
                             for o in result.objects]
    rendition.conversion_failures = [{"kind": f.kind, "source": f.source, "reason": f.reason} for f in result.failures]
    rendition.validation_failures = [{"kind": f.kind, "source": f.source, "reason": f.reason}
                                     for f in report.failures]
    if not result.objects:
        first = result.failures[0].reason if result.failures else "nothing to convert"
        raise RenditionFailed(f"{archive.name}: no DICOM object could be made: {first}")
    rendition.name = DicomRendition.name_for(archive)
    zip_path = scratch / rendition.name
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(INSIDE_JSON, inside_json(rendition, repairs=result.repairs))
        for item, obj in zip(rendition.object_list, result.objects):
            bundle.write(obj.path, item["file"])
    hasher, size = hashlib.sha256(), 0
    with open(zip_path, "rb") as handle:
        while data := handle.read(CHUNK):
            hasher.update(data)
            size += len(data)
    rendition.sha256, rendition.size = hasher.hexdigest(), size
    return zip_path


def inside_json(rendition: DicomRendition, *, repairs: list[str] | None = None) -> bytes:
    """``rendition.json``: what was made from which archive, by what (also the ``.manifest.json`` sidecar)."""
    data = {"format": "pdas-dicom-rendition", "version": 1, "archive": rendition.archive.name,
            "input_sha256": rendition.input_sha256, "converter": rendition.converter,
            "converter_version": rendition.converter_version, "objects": rendition.object_list,
            "conversion_failures": rendition.conversion_failures,
            "validation_failures": rendition.validation_failures, "repairs": repairs or [],
            "note": "Reference copy, not for treatment."}
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


# --- storing it ---------------------------------------------------------------------------------------------


def _store_everywhere(rendition: DicomRendition, zip_path: Path) -> list[RenditionCopy]:
    copies = []
    manifest = _read_inside_json(zip_path)
    for target in rendition.institution.storage_targets.filter(enabled=True).order_by("priority", "name"):
        copy, _ = RenditionCopy.objects.get_or_create(rendition=rendition, target=target,
                                                      defaults={"path": rendition.name, "status": "failed"})
        copy.path, copy.sha256, copy.size, copy.stored_at = rendition.name, "", None, None
        if target.encrypt_to:
            copy.status = RenditionCopy.Status.SKIPPED
            copy.reason = "an encrypted target holds no plain patient data: no rendition there"
        else:
            try:
                with open_target(target) as backend:
                    measured = store_rendition(backend, name=rendition.name, path=zip_path, manifest=manifest)
                if (measured.sha256, measured.size) != (rendition.sha256, rendition.size):
                    raise StorageError(f"{rendition.name} measured on the target differs from the file stored")
                copy.status, copy.reason = RenditionCopy.Status.STORED, ""
                copy.sha256, copy.size, copy.stored_at = measured.sha256, measured.size, timezone.now()
                copy.last_checked_at, copy.last_check_reason = copy.stored_at, ""
            except (StorageError, SecretError, OSError) as exc:
                copy.status, copy.reason = RenditionCopy.Status.FAILED, str(exc)[:1000] or type(exc).__name__
        copy.save()
        copies.append(copy)
    return copies


def _read_inside_json(zip_path: Path) -> bytes:
    with zipfile.ZipFile(zip_path) as bundle:
        return bundle.read(INSIDE_JSON)


def store_rendition(backend: StorageBackend, *, name: str, path: Path, manifest: bytes):
    """Put the zip and its sidecars on a target, replacing an earlier rendition's three objects (and nothing
    else); returns the zip's digest measured on the target."""
    if not name.endswith(".dicom.zip"):
        raise ValueError(f"{name} is not a rendition name")  # never anything else: the archive stays untouched
    for remote in backend.list_files():
        if is_temporary(remote.name) and remote.name.startswith(f".{name}."):
            backend.remove(remote.name)
    for obj in rendition_objects(name):
        if backend.stat(obj) is not None:
            backend.remove(obj)

    def chunks():
        with open(path, "rb") as handle:
            while data := handle.read(CHUNK):
                yield data

    backend.upload(name, chunks())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    backend.write_bytes(name + SHA256_SIDECAR, f"{digest} *{name}\n".encode())
    backend.write_bytes(name + MANIFEST_SIDECAR, manifest)
    return backend.digest(name)


# --- reading it back ----------------------------------------------------------------------------------------


def fetch_rendition(rendition: DicomRendition):
    """The rendition's zip read from the first target that holds it whole (its SHA-256 and size the recorded
    ones), as an open temporary file (deleted when closed), and the target's name. Raises
    ``RenditionFailed`` naming each target's problem when none does."""
    if rendition.status != Status.MADE:
        raise RenditionFailed(f"{rendition.name}: no rendition made ({rendition.get_status_display()})")
    problems = []
    scratch_root = Path(settings.DATA_DIR) / "renditions"
    scratch_root.mkdir(parents=True, exist_ok=True)
    copies = rendition.copies.filter(status__in=(RenditionCopy.Status.STORED, RenditionCopy.Status.INDEXED),
                                     target__enabled=True) \
        .select_related("target").order_by("target__priority", "target__name")
    for copy in copies:
        handle = tempfile.TemporaryFile(dir=scratch_root)
        hasher, size = hashlib.sha256(), 0
        try:
            with open_target(copy.target) as backend:
                for data in backend.read_chunks(rendition.name):
                    handle.write(data)
                    hasher.update(data)
                    size += len(data)
        except (StorageError, SecretError, OSError) as exc:
            handle.close()
            problems.append(f"{copy.target.name}: {exc}")
            continue
        if (hasher.hexdigest(), size) != (rendition.sha256, rendition.size):
            handle.close()
            problems.append(f"{copy.target.name}: {rendition.name} differs from the one stored (SHA-256 or size)")
            continue
        handle.seek(0)
        return handle, copy.target.name
    raise RenditionFailed(f"{rendition.name} could not be read whole from any target: "
                          f"{'; '.join(problems) or 'no target holds it'}")
