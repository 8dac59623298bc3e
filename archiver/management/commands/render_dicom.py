"""``manage.py render_dicom --institution CODE [--mrn MRN] [--force] [--json]``: make the DICOM-RT rendition of
every archive of the institution (or of one patient) that has a verified copy and no rendition made yet
(docs/rendition.md). Each archive is one job, dispatched like the other background work; without a broker
the command waits for them.

JSON: ``{"renditions": [{"archive", "mrn", "status", "name", "objects", "conversion_failures",
"validation_failures", "targets", "reason"}]}``. Exit 0 when every rendition was made, 1 when one failed,
2 on bad input.
"""
from __future__ import annotations

from django.core.management.base import CommandError

from archiver.services.rendition import archives_to_render, make_rendition, request_rendition
from core.commands import Findings, PdasCommand, cli_actor, dumps_json
from inventory.models import Archive, DicomRendition
from sites.commands import institution_option


class Command(PdasCommand):
    help = "Make the DICOM-RT rendition (reference copy, not for treatment) of archives and store it beside them."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--mrn", help="Only this patient's archives")
        parser.add_argument("--force", action="store_true", help="Make renditions already made again")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, institution: str, mrn: str | None, force: bool, json: bool, **options):
        inst = institution_option(institution)
        if mrn is not None and not Archive.objects.filter(institution=inst, mrn=mrn).exists():
            raise CommandError(f"--mrn: institution {inst.code} has no archive of MRN {mrn!r}", returncode=2)
        actor = cli_actor()
        rows = []
        for archive in archives_to_render(institution=inst, mrn=mrn, force=force):
            request_rendition(archive=archive, actor=actor)
            # The command is the worker here: one archive after the other, each resumable on its own.
            rendition = make_rendition(archive_id=archive.pk, force=force)
            rows.append(_row(rendition))
        if json:
            self.stdout.write(dumps_json({"renditions": rows}))
        else:
            if not rows:
                self.stdout.write("every archive with a verified copy has its rendition: nothing to do")
            for row in rows:
                self.stdout.write(f"{row['status']:7} {row['archive']}: {row['reason']}")
        if any(row["status"] != DicomRendition.Status.MADE for row in rows):
            raise Findings


def _row(rendition: DicomRendition) -> dict:
    return {"archive": rendition.archive.name, "mrn": rendition.archive.mrn, "status": rendition.status,
            "name": rendition.name, "objects": rendition.objects_summary,
            "conversion_failures": rendition.conversion_failures,
            "validation_failures": rendition.validation_failures,
            "targets": {c.target.name: c.status for c in rendition.copies.select_related("target")},
            "reason": rendition.reason}
