"""``manage.py verify_audit [--expect ID:HASH ...] [--checkpoints] [--json]``: check the audit log.

- The chain and the MACs: every row's hash matches its content and links to the row before, and its
  MAC matches under the key kept outside the database (rows written before MACs existed are counted,
  not failed); the first row that breaks is named.
- ``--expect ID:HASH`` (repeatable): a row noted outside PDAS (a printed head, an earlier run's output)
  must still be there with that hash: rows cut off the end leave no trace in the chain itself.
- ``--checkpoints``: the checkpoints on the storage targets (``audit_checkpoint``) are read back and
  each checked against the log; a target that cannot be read is "unknown", not a pass.

Exit 0: all of it holds; the last row's id and hash are printed. Exit 1: one line per problem on
stderr. The check itself is audited (``audit.verify``) as the operating-system user who ran it.
"""
from __future__ import annotations

from django.core.management.base import CommandError

from audit import mac
from audit.checkpoints import MATCH, TAMPERED, check_checkpoints
from audit.events import Event
from audit.models import AuditEvent
from audit.services import Expectation, expectation_problem, record_event, verify_chain
from audit.tasks import checkpoint_destinations
from core.commands import Findings, PdasCommand, cli_actor, dumps_json


class Command(PdasCommand):
    help = ("Check the audit log: its hash chain and MACs, rows noted outside PDAS (--expect) and the "
            "checkpoints on the storage targets (--checkpoints); name the first edited, deleted or forged row.")

    def add_arguments(self, parser):
        parser.add_argument("--expect", action="append", default=[], metavar="ID:HASH",
                            help="A row noted earlier that must still be there with this hash (repeatable)")
        parser.add_argument("--checkpoints", action="store_true",
                            help="Read the checkpoints back from the storage targets and check each one")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, expect: list[str], checkpoints: bool, json: bool, **options):
        try:
            expectations = [Expectation.parse(text) for text in expect]
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        report = verify_chain()
        intact = report.broken_id is None
        expected = [(item, expectation_problem(item)) for item in expectations]
        findings = check_checkpoints(checkpoint_destinations()) if checkpoints else []
        problems = [f"audit chain broken at event {report.broken_id}: {report.reason}"] if not intact else []
        problems += [f"audit log does not hold what was noted: {problem}" for _item, problem in expected if problem]
        problems += [finding.line() for finding in findings if finding.status != MATCH]
        tampered = not intact or any(problem for _item, problem in expected) or any(
            finding.status == TAMPERED for finding in findings)
        status = "tampered" if tampered else "unknown" if problems else "pass"
        keys = sorted(mac.known_keys())
        macs = {"checked": report.macs_checked, "before_mac": report.before_macs, "unchecked": report.macs_unchecked,
                "keys": keys}
        record_event(actor=cli_actor(), event=Event.AUDIT_VERIFY,
                     outcome=AuditEvent.Outcome.OK if not problems else AuditEvent.Outcome.FAILED,
                     detail={"status": status, "checked": report.checked, "broken_id": report.broken_id,
                             "reason": report.reason, "head_id": report.head_id, "head_hash": report.head_hash,
                             "macs": macs, "expected": [f"{item.id}:{item.hash}" for item in expectations],
                             "checkpoints": len(findings), "problems": problems})
        if json:
            self.stdout.write(dumps_json({
                "status": status, "intact": intact, "checked": report.checked, "broken_id": report.broken_id,
                "reason": report.reason, "head_id": report.head_id, "head_hash": report.head_hash,
                "head_mac": report.head_mac, "macs": macs,
                "expectations": [{"id": item.id, "hash": item.hash, "ok": not problem, "problem": problem}
                                 for item, problem in expected],
                "checkpoints": [{"target": finding.target, "file": finding.file, "status": finding.status,
                                 "message": finding.message} for finding in findings],
                "problems": problems}))
        else:
            self._summary(report, intact, keys, expected, findings)
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise Findings

    def _summary(self, report, intact, keys, expected, findings) -> None:
        if intact:  # a broken chain is said on stderr; counts up to the break would mislead
            self.stdout.write(f"audit chain intact: {report.checked} events, last event {report.head_id} "
                              f"hash {report.head_hash}")
            if keys:
                self.stdout.write(f"MACs: {report.macs_checked} match (keys {', '.join(keys)}), "
                                  f"{report.before_macs} events written before MACs")
            else:
                self.stdout.write(f"MACs not checked: {mac.KEY_VARIABLE} is not set ({report.macs_unchecked} "
                                  f"events carry one, {report.before_macs} written before MACs)")
        for item, problem in expected:
            if not problem:
                self.stdout.write(f"expected event {item.id}: present with hash {item.hash}")
        for finding in findings:
            if finding.status == MATCH:
                self.stdout.write(finding.line())
