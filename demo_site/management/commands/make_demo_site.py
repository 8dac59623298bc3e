"""manage.py make_demo_site DIR: a thin shell over demo_site.build_demo_site."""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from demo_site import DemoSiteError, build_demo_site, parse_size
from demo_site.build import RV_ENCODINGS


class Command(BaseCommand):
    help = ("Write a synthetic site into DIR: a Pinnacle tree (tps/), first deliveries as CSV, MOSAIQ SQLite "
            "and DICOM (rv/), site.toml and expected.json. Same --seed, same bytes. Exit 0 on success, "
            "2 on bad arguments or a non-empty DIR without --force.")

    def add_arguments(self, parser):
        parser.add_argument("dir", type=Path, help="folder to create (must be empty or absent unless --force)")
        parser.add_argument("--patients", type=int, default=40,
                            help="patients in the pending-archive group, the fixed cast included (default 40)")
        parser.add_argument("--seed", type=int, default=1, help="same seed, same site (default 1)")
        parser.add_argument("--size", default="30M",
                            help="total size of the CT image files, as in 200M or 2G (default 30M)")
        parser.add_argument("--institution", default="DEMO", help="institution code in site.toml (default DEMO)")
        parser.add_argument("--rv-encoding", default="utf-8-sig", choices=RV_ENCODINGS,
                            help="encoding of first_deliveries.csv (default utf-8-sig: UTF-8 with BOM)")
        parser.add_argument("--force", action="store_true",
                            help="DIR may hold an earlier demo site: its tps/ rv/ storage/ ... are replaced")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print a JSON summary on stdout")

    def handle(self, *args, dir: Path, patients: int, seed: int, size: str, institution: str, rv_encoding: str,
               force: bool, as_json: bool, **options):
        try:
            site = build_demo_site(dir, patients=patients, seed=seed, image_bytes=parse_size(size),
                                   institution=institution, rv_encoding=rv_encoding, force=force)
        except DemoSiteError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except OSError as exc:
            raise CommandError(f"{exc.filename or dir}: {exc.strerror or exc}", returncode=2) from None
        if as_json:
            summary = {
                "root": str(site.root),
                "artefacts": {what: str(path) for what, path, _ in site.artefacts},
                "image_bytes": site.image_bytes,
                "patients": len(site.expected["patients"]),
                "deliveries": len(site.expected["deliveries"]),
                "scan_window": site.expected["scan_window"],
                "summary": site.expected["summary"],
            }
            self.stdout.write(json.dumps(summary, ensure_ascii=False, indent=2))
            return
        for what, path, detail in site.artefacts:
            self.stdout.write(f"{what:<17} {path}  ({detail})")
