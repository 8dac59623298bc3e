"""manage.py load_site_config FILE.toml [--json]: a thin shell over sites.services.site_config."""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import CommandError

from sites.services.site_config import SiteConfigError, load_site_config
from core.commands import PdasCommand, cli_actor


class Command(PdasCommand):
    help = ("Create or update institutions and storage targets from a site.toml (docs/configuration.md). "
            "Exit 0 when loaded, 2 when the file is wrong (nothing is written then).")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the site.toml")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON on stdout")

    def handle(self, *args, file: Path, as_json: bool = False, **options):
        try:
            report = load_site_config(path=file, actor=cli_actor())
        except SiteConfigError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
            return
        counts = report.as_dict()["counts"]
        self.stdout.write(f"{file}: {counts['created']} created, {counts['updated']} updated, "
                          f"{counts['unchanged']} unchanged")
        for change in report.created:
            self.stdout.write(f"  created {change.kind} {change.key}")
        for change in report.updated:
            self.stdout.write(f"  updated {change.kind} {change.key}: {', '.join(change.fields)}")
        for change in report.not_in_file:
            self.stdout.write(f"  not in the file, left as it is: {change.kind} {change.key}")

