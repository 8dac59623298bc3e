"""``manage.py verify_audit [--json]``: recompute the audit chain and name the first broken row.

Exit 0: every row's hash matches its content and links to the row before; the last row's id and hash
are printed, to be kept outside PDAS (rows cut off the end of a chain leave no trace inside it).
Exit 1: the first row that breaks the chain, and why, on one line. The check itself is audited
(``audit.verify``) as the operating-system user who ran it.
"""
from __future__ import annotations

import json

from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event, verify_chain
from core.commands import Findings, PdasCommand, cli_actor


class Command(PdasCommand):
    help = "Check the audit log's hash chain; name the first edited, deleted or inserted row."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, json: bool, **options):
        report = verify_chain()
        intact = report.broken_id is None
        record_event(actor=cli_actor(), event=Event.AUDIT_VERIFY,
                     outcome=AuditEvent.Outcome.OK if intact else AuditEvent.Outcome.FAILED,
                     detail={"checked": report.checked, "broken_id": report.broken_id, "reason": report.reason,
                             "head_id": report.head_id, "head_hash": report.head_hash})
        if json:
            self.stdout.write(_dumps({"intact": intact, "checked": report.checked, "broken_id": report.broken_id,
                                      "reason": report.reason, "head_id": report.head_id,
                                      "head_hash": report.head_hash}))
        elif intact:
            self.stdout.write(f"audit chain intact: {report.checked} events, last event {report.head_id} "
                              f"hash {report.head_hash}")
        if not intact:
            self.stderr.write(f"audit chain broken at event {report.broken_id}: {report.reason}")
            raise Findings


def _dumps(data) -> str:
    return json.dumps(data, ensure_ascii=False)
