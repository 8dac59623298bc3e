"""``manage.py archive --institution CODE [--json]``: archive the pending group (docs/contracts.md §7).

The patients go through ``core.dispatch`` as from the web page: without a broker the work runs in
this process (the embedded pool) and the command waits for it; with ``CELERY_BROKER_URL`` set the
same tasks are queued and the command waits for the workers to decide every patient.
"""
from __future__ import annotations

import time

from django.core.management.base import CommandError

from archiver.models import ArchiveRun, PatientArchiveTask
from sites.commands import institution_option
from archiver.services import archiving
from archiver.tasks import start_archive_run
from connectors.tps.base import TpsError
from core.commands import Findings, PdasCommand, cli_actor, dumps_json
from core.dispatch import has_broker, wait_for_embedded_work


class Command(PdasCommand):
    help = "Pack, transfer, verify and remove the originals of the institution's pending-archive group."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON")
        parser.add_argument("--timeout", type=float, default=24 * 3600,
                            help="Seconds to wait for every patient to be decided (default a day)")

    def handle(self, *args, institution: str, json: bool, timeout: float, **options):
        inst = institution_option(institution)
        try:
            run = archiving.prepare_archive_run(institution=inst, actor=cli_actor())
        except TpsError as exc:
            raise CommandError(f"TPS of {inst.code} cannot be read: {exc}", returncode=2) from None
        run = start_archive_run(run)
        if has_broker():
            run = self._wait(run, timeout)
        else:
            wait_for_embedded_work(timeout)
            run = archiving.finish_run(run=run)
        results = [
            {"mrn": t.patient.mrn, "archive": t.archive.name if t.archive else "",
             "status": t.result if t.result != PatientArchiveTask.Result.PENDING else "error",
             "reason": t.reason or ("" if t.result != PatientArchiveTask.Result.PENDING else "not finished in time")}
            for t in run.tasks.select_related("patient", "archive").order_by("id")
        ]
        if json:
            self.stdout.write(dumps_json({"run": run.pk, "results": results}))
        else:
            marks = {"pass": "✓", "error": "×", "warning": "!"}
            for r in results:
                self.stdout.write(f"{marks[r['status']]} {r['mrn']} {r['archive']} {r['reason']}".rstrip())
            self.stdout.write(f"{len(results)} patients, {sum(r['status'] == 'pass' for r in results)} archived")
        if any(r["status"] != "pass" for r in results):
            raise Findings

    def _wait(self, run: ArchiveRun, timeout: float) -> ArchiveRun:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not run.tasks.filter(result=PatientArchiveTask.Result.PENDING).exists():
                break
            time.sleep(1)
        return archiving.finish_run(run=run)
