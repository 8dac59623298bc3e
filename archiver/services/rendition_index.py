"""The renditions rebuilt from the targets (docs/rendition.md, "Keeping it whole"), for ``rebuild_index``.

Beside an archive, ``<archive>.dicom.zip`` with its ``.sha256`` and ``.manifest.json`` sidecars (the same JSON as
the ``rendition.json`` inside the zip). ``archive_names`` never lists them (their names are not archive names);
here they become ``DicomRendition`` and ``RenditionCopy`` rows again, for archives in the index only, and only
when the rendition's ``input_sha256`` is that archive's digest. A copy learnt this way is ``indexed`` until it is
re-hashed on its target (``--verify`` does it at once; the next ``check_archives`` otherwise).
"""
from __future__ import annotations

import json

from django.db import transaction
from django.utils import timezone

from archiver.naming import parse_archive_name
from audit.events import Event
from audit.services import record_event
from archiver.services.archive_index import (
    MANIFEST_LIMIT, SidecarError, parse_sha256_sidecar,
)
from archiver.services.rendition import MANIFEST_SIDECAR, SHA256_SIDECAR
from archiver.services.rendition_keeping import check_rendition_copy
from connectors.storage.base import StorageBackend, StorageError
from inventory.models import RENDITION_SUFFIX, Archive, DicomRendition, RenditionCopy
from sites.models import Institution, StorageTarget

FORMAT = "pdas-dicom-rendition"


def rendition_names(backend: StorageBackend) -> list[str]:
    """Renditions on a target that have a manifest beside them, by their names (``<archive>.dicom.zip``)."""
    suffix = RENDITION_SUFFIX + MANIFEST_SIDECAR
    return sorted(f.name[: -len(MANIFEST_SIDECAR)] for f in backend.list_files()
                  if f.name.endswith(suffix) and parse_archive_name(f.name[: -len(suffix)]))


def _read(backend: StorageBackend, target: StorageTarget, name: str) -> tuple[dict, str, int]:
    """(manifest, digest from the ``.sha256`` sidecar, size of the zip) of one rendition on a target."""
    where = f"{target.name}: {name}"
    stat = backend.stat(name)
    if stat is None:
        raise SidecarError(f"{where}: missing (only its sidecars are there)")
    manifest_stat = backend.stat(name + MANIFEST_SIDECAR)
    if manifest_stat is None or manifest_stat.size > MANIFEST_LIMIT:
        raise SidecarError(f"{where}{MANIFEST_SIDECAR}: missing or larger than any manifest")
    try:
        manifest = json.loads(backend.read_bytes(name + MANIFEST_SIDECAR).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"{where}{MANIFEST_SIDECAR}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SidecarError(f"{where}{MANIFEST_SIDECAR}: not a PDAS rendition manifest")
    if backend.stat(name + SHA256_SIDECAR) is None:
        raise SidecarError(f"{where}{SHA256_SIDECAR}: missing")
    digest = parse_sha256_sidecar(backend.read_bytes(name + SHA256_SIDECAR), name=name, where=f"{where}{SHA256_SIDECAR}")
    return manifest, digest, stat.size


@transaction.atomic
def index_target_rendition(*, archive: Archive, target: StorageTarget, name: str, manifest: dict, sha256: str,
                           size: int, actor=None) -> tuple[RenditionCopy, bool, bool]:
    """The rendition row of ``archive`` (created ``made`` when absent) and its copy on ``target`` (``indexed``).
    Returns (copy, rendition created, copy created). A rendition recorded with another digest is never changed.
    What it adds is audited (``rendition.index``) in the same transaction, as an archive's indexing is."""
    objects = [o for o in manifest.get("objects") or [] if isinstance(o, dict)]
    summary: dict[str, int] = {}
    for obj in objects:
        summary[str(obj.get("modality"))] = summary.get(str(obj.get("modality")), 0) + 1
    rendition, created = DicomRendition.objects.select_for_update().get_or_create(archive=archive, defaults={
        "institution": archive.institution, "status": DicomRendition.Status.MADE, "name": name,
        "reason": f"indexed from {target.name}", "converter": str(manifest.get("converter") or ""),
        "converter_version": str(manifest.get("converter_version") or ""),
        "input_sha256": str(manifest.get("input_sha256") or ""), "objects_summary": dict(sorted(summary.items())),
        "object_list": objects, "conversion_failures": manifest.get("conversion_failures") or [],
        "validation_failures": manifest.get("validation_failures") or [], "sha256": sha256, "size": size,
        "finished_at": timezone.now()})
    if not created and (rendition.sha256, rendition.size) != (sha256, size):
        raise SidecarError(f"{target.name}: {name}: the index records another digest or size for this rendition; "
                           "not changed (check_archives --repair makes its copies whole)")
    copy, copy_created = RenditionCopy.objects.get_or_create(rendition=rendition, target=target, defaults={
        "path": name, "status": RenditionCopy.Status.INDEXED, "sha256": sha256, "size": size})
    if created or copy_created:
        record_event(actor=actor, event=Event.RENDITION_INDEX, institution=archive.institution.code,
                     mrns=[archive.mrn], obj=rendition,
                     detail={"rendition": name, "target": target.name, "rendition_created": created,
                             "reason": "rebuild"})
    return copy, created, copy_created


def index_target_renditions(*, institution: Institution, target: StorageTarget, backend: StorageBackend, report,
                            verify: bool, actor) -> None:
    """Index the renditions of one plain target into ``report`` (an ``IndexReport``): problems are lines in it."""
    for name in rendition_names(backend):
        report.renditions_seen += 1
        archive_name = name[: -len(RENDITION_SUFFIX)]
        try:
            archive = Archive.objects.filter(institution=institution, name=archive_name).first()
            if archive is None:
                raise SidecarError(f"{target.name}: {name}: its archive is not in the index; left alone")
            manifest, sha256, size = _read(backend, target, name)
            if manifest.get("archive") != archive_name or manifest.get("input_sha256") != archive.checksum:
                raise SidecarError(f"{target.name}: {name}: made from another archive than {archive_name} "
                                   "(its input_sha256 differs); left alone")
            copy, created, copy_created = index_target_rendition(archive=archive, target=target, name=name,
                                                                 manifest=manifest, sha256=sha256, size=size, actor=actor)
        except SidecarError as exc:
            report.problems.append(str(exc))
            continue
        except StorageError as exc:
            report.problems.append(f"{target.name}: {name}: {exc}")
            continue
        report.renditions_created += created
        report.rendition_copies_added += copy_created
        if verify and copy.status != RenditionCopy.Status.STORED:
            copy = RenditionCopy.objects.select_related("rendition__archive", "rendition__institution",
                                                        "target").get(pk=copy.pk)
            if check_rendition_copy(copy=copy, backend=backend, actor=actor) == RenditionCopy.Status.STORED:
                report.renditions_verified += 1
            else:
                report.problems.append(f"{target.name}: {name}: {copy.status}: {copy.last_check_reason[:300]}")
