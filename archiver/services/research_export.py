"""The research and teaching export of a rendition (docs/rendition.md, "Research export").

Only a rendition that is made is exported, read whole from a target (``fetch_rendition``: never raw Pinnacle
files, never the archive), anonymised by ``pinnacle.dicom.anonymise`` (PS3.15 Annex E basic profile, Retain
Longitudinal Temporal Information with Modified Dates, Retain Patient Characteristics) and zipped. The patient's
``PseudonymMap`` (pseudonym, date offset, UID map) is created at the first export and reused by every later one,
so the same patient always gets the same pseudonym, dates and UIDs. The map is for the auditor role only: the
export names the pseudonym, never the map, and the audit row does not hold it.
"""
from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from archiver.services.rendition import INSIDE_JSON, RenditionFailed, fetch_rendition
from audit.actors import actor_name
from audit.events import Event
from audit.services import record_event
from inventory.models import DicomRendition, PseudonymMap
from pinnacle.dicom.anonymise import anonymise_rendition, random_date_offset_days

NOTE = "Anonymised for research or teaching. Reference copy, not for treatment."


class ExportFailed(Exception):
    """Why a research export could not be made: one line naming the rendition."""


@dataclass
class ResearchExport:
    handle: IO[bytes]  # the anonymised zip, an open temporary file (deleted when closed)
    filename: str
    pseudonym: str
    objects: int
    new_map: bool


def _new_pseudonym() -> str:
    while True:
        pseudonym = f"ANON-{secrets.token_hex(4).upper()}"
        if not PseudonymMap.objects.filter(pseudonym=pseudonym).exists():
            return pseudonym


def pseudonym_map_for(*, rendition: DicomRendition, actor) -> tuple[PseudonymMap, bool]:
    """The patient's map, created (a new pseudonym and date offset, no UIDs yet) at the first export."""
    archive = rendition.archive
    for _attempt in range(3):
        existing = PseudonymMap.objects.filter(institution_id=rendition.institution_id, mrn=archive.mrn).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                return PseudonymMap.objects.create(
                    institution_id=rendition.institution_id, mrn=archive.mrn, pseudonym=_new_pseudonym(),
                    date_offset_days=random_date_offset_days(), uid_map={},
                    created_by=actor_name(actor) or ""), True
        except IntegrityError:  # another export of the patient (or the same pseudonym) won: read it again
            continue
    raise ExportFailed(f"{rendition.name}: the patient's pseudonym map could not be created")


def _extract(bundle_handle: IO[bytes], rendition: DicomRendition, folder: Path) -> list[Path]:
    """The rendition's DICOM objects (every member but ``rendition.json``) written into ``folder``."""
    paths: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(bundle_handle) as bundle:
        for member in bundle.infolist():
            name = PurePosixPath(member.filename)
            if member.is_dir() or member.filename == INSIDE_JSON:
                continue
            if name.is_absolute() or ".." in name.parts:
                raise ExportFailed(f"{rendition.name}: {member.filename} is not a name inside the rendition")
            path = folder / f"{len(paths):06d}.dcm"
            with bundle.open(member) as source, open(path, "wb") as out:
                shutil.copyfileobj(source, out)
            paths.append(path)
    return paths


def export_research_dicom(*, rendition: DicomRendition, actor) -> ResearchExport:
    """The anonymised zip of a made rendition, with the patient's pseudonym map kept (or reused); audited
    ``research.export`` (``failed`` with the reason). Raises ``ExportFailed`` naming the rendition."""
    archive = rendition.archive
    scratch_root = Path(settings.DATA_DIR) / "renditions"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"research-{rendition.pk}-", dir=scratch_root))
    target = ""
    try:
        try:
            source, target = fetch_rendition(rendition)
        except RenditionFailed as exc:
            raise ExportFailed(str(exc)) from None
        with source:
            paths = _extract(source, rendition, scratch / "in")
        if not paths:
            raise ExportFailed(f"{rendition.name}: the rendition holds no DICOM object")
        mapping, new_map = pseudonym_map_for(rendition=rendition, actor=actor)
        with transaction.atomic():  # one export of a patient at a time extends its UID map
            mapping = PseudonymMap.objects.select_for_update().get(pk=mapping.pk)
            result = anonymise_rendition(paths, scratch / "out", pseudonym=mapping.pseudonym,
                                         date_offset_days=mapping.date_offset_days, uid_map=dict(mapping.uid_map))
            if result.problems:
                raise ExportFailed(f"{rendition.name}: {result.problems[0]}")
            mapping.uid_map, mapping.updated_at, mapping.exports = result.uid_map, timezone.now(), mapping.exports + 1
            mapping.save(update_fields=["uid_map", "updated_at", "exports"])
            handle = tempfile.TemporaryFile(dir=scratch_root)
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                bundle.writestr("anonymised.json", json.dumps({
                    "format": "pdas-research-export", "version": 1, "pseudonym": mapping.pseudonym,
                    "method": result.method, "objects": len(result.paths), "converter": rendition.converter,
                    "converter_version": rendition.converter_version, "note": NOTE}, indent=2) + "\n")
                for path in result.paths:
                    bundle.write(path, path.name)
            handle.seek(0)
            record_event(actor=actor, event=Event.RESEARCH_EXPORT, institution=rendition.institution.code,
                         mrns=[archive.mrn], obj=rendition,
                         detail={"rendition": rendition.name, "target": target, "pseudonym": mapping.pseudonym,
                                 "new_map": new_map, "objects": len(result.paths)})
        return ResearchExport(handle=handle, filename=f"{mapping.pseudonym}.dicom.zip", pseudonym=mapping.pseudonym,
                              objects=len(result.paths), new_map=new_map)
    except ExportFailed as exc:
        record_event(actor=actor, event=Event.RESEARCH_EXPORT, institution=rendition.institution.code,
                     mrns=[archive.mrn], obj=rendition, outcome="failed",
                     detail={"rendition": rendition.name, "target": target, "reason": str(exc)[:1000]})
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
