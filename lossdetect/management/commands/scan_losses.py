"""``manage.py scan_losses --institution CODE --from YYYY-MM-DD --to YYYY-MM-DD [--json] [--no-refresh]``.

Exit 0: the scan ran and nothing is lost. 1: a lost plan, or R&V rows that had to be skipped
(a person must look). 2: bad input or configuration, or the scan could not run (unknown).
"""
from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sites.commands import institution_option
from lossdetect.models import LossScan
from lossdetect.services.scan import run_loss_scan
from core.commands import cli_actor, dumps_json


def _date(option: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r} is not a date (YYYY-MM-DD)", returncode=2) from None


def scan_json(scan: LossScan) -> dict:
    """The docs/contracts.md §7 JSON of a scan (``summary`` and ``findings``), plus the scan's id and status,
    and ``other_tps``: the window's records of other planning systems, which are never findings."""
    zone = scan.institution.zone
    findings = [
        {"mrn": f.mrn, "patient_name": f.patient_name, "plan_label": f.plan_label, "plan_uid": f.plan_uid,
         "first_delivery": timezone.localtime(f.first_delivery, zone).isoformat(), "course": f.course,
         "is_recourse": f.is_recourse, "category": f.category, "match": f.match, "found_in": f.found_in,
         "also_known_as": f.also_known_as}
        for f in scan.findings.order_by("first_delivery", "mrn", "plan_label")
    ]
    other_tps = [
        {"mrn": r.mrn, "patient_name": r.patient_name, "plan_label": r.plan_label, "plan_uid": r.plan_uid,
         "first_delivery": timezone.localtime(r.first_delivery, zone).isoformat(), "course": r.course,
         "planning_system": r.planning_system, "machine": r.machine}
        for r in scan.other_tps_records.order_by("first_delivery", "mrn", "plan_label")
    ]
    return {"scan": scan.pk, "institution": scan.institution.code, "window": [str(scan.window_from),
            str(scan.window_to)], "status": scan.status, "error": scan.error, "summary": scan.summary,
            "findings": findings, "other_tps": other_tps, "problems": scan.source_warnings}


class Command(BaseCommand):
    help = "Check the R&V first deliveries of a window against the TPS and the archives (six categories)."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--from", dest="window_from", required=True, help="First day, YYYY-MM-DD (site time)")
        parser.add_argument("--to", dest="window_to", required=True, help="Last day, YYYY-MM-DD (inclusive)")
        parser.add_argument("--json", action="store_true", help="Print the summary and findings as JSON")
        parser.add_argument("--no-refresh", action="store_true",
                            help="Match against the TPS as last read instead of re-reading it first")

    def handle(self, *args, institution: str, window_from: str, window_to: str, json: bool, no_refresh: bool,
               **options):
        start, end = _date("--from", window_from), _date("--to", window_to)
        if start > end:
            raise CommandError(f"--from {start} is after --to {end}", returncode=2)
        inst = institution_option(institution)
        scan = run_loss_scan(institution=inst, window_from=start, window_to=end, trigger=LossScan.Trigger.MANUAL,
                             actor=cli_actor(), refresh_tps=not no_refresh)
        data = scan_json(scan)
        if json:
            self.stdout.write(dumps_json(data))
        else:
            self._print(data)
        if scan.status != LossScan.Status.DONE:
            raise CommandError(f"scan {scan.pk} failed, losses unknown: {scan.error}", returncode=2)
        for problem in scan.source_warnings:
            self.stderr.write(f"skipped R&V row: {problem['where']}: {problem['reason']}")
        lost = scan.summary.get("lost", 0)
        if lost or scan.source_warnings:
            self.stderr.write(f"{lost} lost plan(s), {len(scan.source_warnings)} R&V row(s) skipped: see scan {scan.pk}")
            raise SystemExit(1)

    def _print(self, data: dict) -> None:
        for f in data["findings"]:
            where = f["match"] or (f"seen in {f['found_in']}" if f["found_in"] else "")
            self.stdout.write(f"{f['category']:<24} {f['mrn']:<12} {f['plan_label']:<16} {f['first_delivery']} "
                              f"{where}".rstrip())
        for r in data["other_tps"]:
            self.stdout.write(f"{'other_tps':<24} {r['mrn']:<12} {r['plan_label']:<16} {r['first_delivery']} "
                              f"planned in {r['planning_system']}")
        if data["status"] == LossScan.Status.DONE:
            s = data["summary"]
            self.stdout.write(f"{s['total']} plans, {s['pending']} pending archive, {s['first_course_lost']} "
                              f"first-course lost, {s['recourse_lost']} re-course lost, "
                              f"{s.get('other_tps', 0)} of other planning systems (scan {data['scan']})")
