"""``manage.py curate --institution CODE [--json]``: classify the pending-archive group (docs/contracts.md §7).

Exit 0 when every patient is ready (or its findings are acknowledged for its current files),
1 when any finding needs a person, 2 on a bad institution code or a TPS that cannot be read.
"""
from __future__ import annotations


from django.core.management.base import CommandError

from sites.commands import institution_option
from connectors.tps.base import TpsError
from curation.selectors import run_findings
from curation.services.curate import run_curation
from core.commands import Findings, PdasCommand, cli_actor, dumps_json


class Command(PdasCommand):
    help = ("Re-read the TPS and classify every patient of the institution's pending-archive group: ready, "
            "naming, restored, transitional, duplicate, image_only or unreadable.")

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--json", action="store_true", help="Print the patients as JSON")

    def handle(self, *args, institution: str, json: bool, **options):
        inst = institution_option(institution)
        try:
            run = run_curation(institution=inst, actor=cli_actor())
        except TpsError as exc:
            raise CommandError(f"TPS of {inst.code} cannot be read: {exc}", returncode=2) from None
        findings = list(run_findings(run=run))
        patients = [
            {"mrn": f.mrn, "tps_path": f.tps_path, "category": f.category, "reasons": f.reasons,
             "plan_ids": f.plan_ids, "name": f.patient_name, "acknowledged": bool(f.acknowledged),
             "needs_person": f.needs_person}
            for f in findings
        ]
        for warning in run.warnings:
            self.stderr.write(f"warning: {warning}")
        if json:
            self.stdout.write(dumps_json({"run": run.pk, "institution": inst.code, "patients": patients,
                                      "counts": run.counts, "warnings": run.warnings}))
        else:
            for p in patients:
                mark = " (acknowledged)" if p["acknowledged"] else ""
                self.stdout.write(f"{p['category']:<12} {p['mrn'] or '-':<14} {p['tps_path']}{mark}")
                for reason in p["reasons"]:
                    self.stdout.write(f"{'':<13}{reason}")
            waiting = run.counts.get("needs_person", 0)
            self.stdout.write(f"{run.counts.get('patients', 0)} patients, {run.counts.get('ready', 0)} ready, "
                              f"{waiting} need a decision")
        if any(p["needs_person"] for p in patients):
            raise Findings
