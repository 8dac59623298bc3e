"""Keeping archives whole: how fast PDAS checks copies where they are stored, beside plain baselines.

    .venv/bin/python bench/fixity.py [--copies 100000] [--archives 20] [--archive-size 50M]

1. Presence check: ``copies`` archives (each with its two sidecars) in a folder target, indexed in the
   database; PDAS's presence-and-size check of every copy (one listing, every copy compared and
   recorded), beside the baseline of listing the same folder with ``os.scandir`` + ``stat``.
2. Full re-hash over SFTP: ``archives`` incompressible archives on a loopback sshd; PDAS's full check of
   every copy (sha256sum run on the target over SSH, sidecars read back, each check recorded), beside
   ``ssh host sha256sum`` of the same files in the same run.
Prints seconds, rates and ratios; asserts nothing. Part 2 needs root (it starts its own sshd).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import setup_django  # noqa: E402  (bench/common.py, beside this script)




def index_archives(institution, target, names_sizes: list[tuple[str, int, str]], manifest: dict) -> None:
    """Archive + ArchiveCopy rows (verified, checked now) for files already on the target."""
    from django.utils import timezone

    from inventory.models import Archive, ArchiveCopy

    now = timezone.now()
    archives = Archive.objects.bulk_create(
        [Archive(institution=institution, name=name, mrn=f"{i:08d}", size=size, checksum=digest,
                 manifest=manifest, status=Archive.Status.VERIFIED, verified_at=now)
         for i, (name, size, digest) in enumerate(names_sizes)], batch_size=2000)
    ArchiveCopy.objects.bulk_create(
        [ArchiveCopy(archive=a, target=target, path=a.name, size=a.size, checksum=a.checksum,
                     status=ArchiveCopy.Status.VERIFIED, stored_at=now, last_checked_at=now) for a in archives],
        batch_size=2000)


def write_archive_files(folder: Path, name: str, data: bytes, manifest: dict) -> tuple[str, int, str]:
    digest = hashlib.sha256(data).hexdigest()
    (folder / name).write_bytes(data)
    (folder / f"{name}.sha256").write_bytes(f"{digest} *{name}\n".encode())
    (folder / f"{name}.manifest.json").write_bytes(json.dumps(manifest).encode())
    return name, len(data), digest


def presence_bench(work: Path, copies: int) -> None:
    from archiver.services.fixity import check_presence, checked_copies
    from connectors.storage.local import FileStorage
    from sites.models import Institution, StorageTarget

    folder = work / "presence-array"
    folder.mkdir()
    manifest = {"format": "pdas-archive/1", "files": []}
    rows = [write_archive_files(folder, f"P-{i:07d}_{i:08d}_20240101000000.tar.gz", i.to_bytes(8, "big"), manifest)
            for i in range(copies)]
    institution = Institution.objects.create(code="PRESENCE", name="presence", tps_url="file:///nonexistent",
                                             pending_group="ToArchive")
    target = StorageTarget.objects.create(institution=institution, name="array", url=f"file://{folder}")
    index_archives(institution, target, rows, manifest)

    start = time.perf_counter()
    listed = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            listed[entry.name] = entry.stat(follow_symlinks=False).st_size
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    all_copies = list(checked_copies(institution=institution))
    with FileStorage(folder) as backend:
        results = check_presence(target=target, copies=all_copies, backend=backend, actor="bench")
    seconds = time.perf_counter() - start
    passed = sum(1 for check in results.values() if check.outcome == "pass")
    print(f"presence check of {copies:,} copies ({len(listed):,} files listed): PDAS {seconds:.1f} s "
          f"({copies / seconds:,.0f} copies/s, {passed:,} whole, each recorded); baseline scandir+stat "
          f"{baseline:.2f} s; target: under 60 s")


def rehash_bench(work: Path, archives: int, size: int) -> None:
    from archiver.services.fixity import check_archives
    from sites.models import Institution, StorageTarget
    from tests.servers.sshd import acquire_account, release_account, start_sshd

    account = acquire_account()
    sshd = start_sshd(account)
    try:
        folder = sshd.root / "fixity-array"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        manifest = {"format": "pdas-archive/1", "files": []}
        rows = [write_archive_files(folder, f"R-{i:04d}_{i:08d}_20240101000000.tar.gz", os.urandom(size), manifest)
                for i in range(archives)]
        sshd.give_to_user(folder)
        subprocess.run(["sync"], check=True)
        institution = Institution.objects.create(code="REHASH", name="rehash", tps_url="file:///nonexistent",
                                                 pending_group="ToArchive")
        target = StorageTarget.objects.create(institution=institution, name="sftp",
                                              url=sshd.url(folder, scheme="sftp"), key_file=sshd.key_file,
                                              known_hosts=sshd.known_hosts)
        index_archives(institution, target, rows, manifest)
        ssh = ["ssh", "-p", str(sshd.port), "-i", sshd.key_file, "-o", f"UserKnownHostsFile={sshd.known_hosts}",
               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{sshd.user}@{sshd.host}"]
        # Warm the page cache for both the same way: each side hashes files that were just read once.
        subprocess.run([*ssh, "cat " + " ".join(str(folder / n) for n, _, _ in rows) + " > /dev/null"], check=True)

        start = time.perf_counter()
        for name, _, _ in rows:
            subprocess.run([*ssh, f"sha256sum {folder / name}"], check=True, capture_output=True)
        baseline = time.perf_counter() - start

        start = time.perf_counter()
        report = check_archives(institution=institution, actor="bench", check_all=True)
        seconds = time.perf_counter() - start
        summary = report.summary()
        methods = {c.method for c in report.copies}
        mb = archives * size / 1e6
        print(f"full re-hash of {archives} archives, {mb:,.0f} MB, over SFTP ({', '.join(sorted(methods))}): "
              f"PDAS {seconds:.1f} s ({mb / seconds:,.0f} MB/s, {summary['verified']} verified); "
              f"baseline ssh sha256sum per file {baseline:.1f} s ({mb / baseline:,.0f} MB/s)")
        print(f"ratio PDAS / ssh sha256sum: {baseline / seconds:.2f}x (target >= 0.9x)")
    finally:
        sshd.cleanup()
        release_account(account)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=100_000)
    parser.add_argument("--archives", type=int, default=20)
    parser.add_argument("--archive-size", default="50M")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pdas-bench-fixity-"))
    try:
        setup_django(work)
        from demo_site import parse_size

        presence_bench(work, args.copies)
        if os.geteuid() == 0:
            rehash_bench(work, args.archives, parse_size(args.archive_size))
        else:
            print("full re-hash over SFTP skipped: it needs root to start a loopback sshd")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
