"""``manage.py audit_checkpoint [--json]``: write the audit log's head to the storage targets now.

The same as the daily beat entry (docs/audit.md, "Checkpoints"): a signed JSON file on the first
enabled target of every institution. Exit 0: written everywhere; exit 1: a target could not be
written, or there is none (each named on stderr, one line each). Recorded as ``audit.checkpoint``.
"""
from __future__ import annotations

from audit.checkpoints import write_checkpoint
from audit.tasks import checkpoint_destinations
from core.commands import Findings, PdasCommand, cli_actor, dumps_json


class Command(PdasCommand):
    help = "Write the audit log's head (a signed checkpoint) to the first enabled storage target of each institution."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, json: bool, **options):
        destinations = checkpoint_destinations()
        run = write_checkpoint(destinations, actor=cli_actor())
        checkpoint = run.checkpoint
        if json:
            self.stdout.write(dumps_json({"file": checkpoint.file_name, "head_id": checkpoint.head_id,
                                          "head_hash": checkpoint.head_hash, "rows": checkpoint.rows,
                                          "signed": bool(checkpoint.signature), "written": run.written,
                                          "failed": run.failed}))
        elif run.written:
            self.stdout.write(f"audit checkpoint {checkpoint.file_name} (event {checkpoint.head_id} hash "
                              f"{checkpoint.head_hash}) written to {', '.join(run.written)}")
        if not checkpoint.signature:
            self.stderr.write("audit checkpoint unsigned: PDAS_AUDIT_MAC_KEY is not set (docs/audit.md)")
        if not destinations:
            self.stderr.write("audit checkpoint not written: no institution has an enabled storage target")
        for name, reason in run.failed.items():
            self.stderr.write(f"audit checkpoint not written to {name}: {reason}")
        if not run.ok:
            raise Findings
