"""Storage targets beside their protocols' own tools, on the same files in the same run.

    .venv/bin/python bench/storage_targets.py [--files 4] [--size 64M] [--runs 3] [--only smb|s3|age]

Makes ``--files`` incompressible archive-sized files, then stores all of them:
  SMB   PDAS's smb:// target (temporary name, rename, size check; signed and encrypted session) against
        Samba's own ``smbclient put`` with ``--client-protection=encrypt``, to the same loopback smbd;
  S3    PDAS's s3:// target (multipart, a SHA-256 per part, If-None-Match completion) against a plain
        boto3 ``upload_file`` (its default transfer settings), to the same moto server over HTTPS;
  age   PDAS's encrypted target (age v1 through pyrage, to a folder, with both ``.sha256`` sidecars)
        against ``age -r <recipient> -o <file>`` on the same archives.
Then the read-back digest (what a fixity check of SMB and S3 costs) beside ``smbclient get`` and
boto3 ``download_file``. Each side runs ``--runs`` times, taking turns with the other, and the medians
are compared. Prints MB/s and ratios (PDAS / tool; the target is >= 0.8x); asserts nothing.
Needs root (it starts smbd with a test account) and the Debian packages samba, smbclient and age.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHUNK = 1 << 20


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1:].upper() in units else int(text)


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(count):
        path = folder / f"PATIENT-{n:03d}_{n:06d}_20240101000000.tar.gz"
        with open(path, "wb") as handle:
            left = size
            while left:
                piece = os.urandom(min(CHUNK * 4, left))
                handle.write(piece)
                left -= len(piece)
        files.append(path)
    return files


def chunks_of(path: Path):
    with open(path, "rb") as handle:
        while data := handle.read(CHUNK):
            yield data


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


RUNS = 3  # set by --runs


def paired(label: str, pdas, tool, *, reset=None) -> tuple[str, float, float]:
    """(label, PDAS time, tool time): each the median of ``RUNS`` runs, PDAS and the tool taking turns so
    that neither gets the quieter moments of a shared machine; ``reset()`` runs before each round (a target
    that refuses to overwrite gets a fresh place)."""
    pdas_times, tool_times = [], []
    for _ in range(RUNS):
        if reset is not None:
            reset()
        for times, fn in ((pdas_times, pdas), (tool_times, tool)):
            times.append(timed(fn))
    return label, sorted(pdas_times)[len(pdas_times) // 2], sorted(tool_times)[len(tool_times) // 2]


def bench_smb(files: list[Path], work: Path) -> list[tuple[str, float, float]]:
    from connectors.storage import open_storage
    from tests.servers.samba import start_samba

    server = start_samba()
    try:
        auth = work / "smb-auth"
        auth.write_text(f"username = {server.user}\npassword = {server.password}\n")
        auth.chmod(0o600)

        def smbclient(folder: str, command: str) -> None:
            subprocess.run(["smbclient", f"//{server.host}/{server.share}", "-p", str(server.port), "-A", str(auth),
                            "--client-protection=encrypt", "-m", "SMB3", "-c", f"cd {folder}; {command}"],
                           check=True, capture_output=True)

        folders = {"pdas": server.new_dir("pdas"), "tool": server.new_dir("tool")}

        def fresh() -> None:  # PDAS never overwrites an archive: each upload run goes to new folders
            folders.update(pdas=server.new_dir("pdas"), tool=server.new_dir("tool"))

        def pdas_put() -> None:
            with open_storage(server.url(folders["pdas"]), password=server.password) as storage:
                for path in files:
                    storage.upload(path.name, chunks_of(path))

        def tool_put() -> None:
            for path in files:
                smbclient(folders["tool"], f'put "{path}" "{path.name}"')

        def pdas_digest() -> None:
            with open_storage(server.url(folders["pdas"]), password=server.password) as storage:
                for path in files:
                    storage.digest(path.name)

        back = work / "smb-back"
        back.mkdir()

        def tool_get() -> None:
            for path in files:
                smbclient(folders["tool"], f'get "{path.name}" "{back / path.name}"')
                subprocess.run(["sha256sum", str(back / path.name)], check=True, capture_output=True)

        upload = paired("SMB upload: PDAS smb:// / smbclient put", pdas_put, tool_put, reset=fresh)
        # the last run's folders hold the files the read-back reads
        return [upload, paired("SMB read-back digest: PDAS / smbclient get + sha256sum", pdas_digest, tool_get)]
    finally:
        server.cleanup()


def bench_s3(files: list[Path], work: Path) -> list[tuple[str, float, float]]:
    from connectors.storage import open_storage
    from tests.servers.s3 import start_s3

    server = start_s3(work / "s3")
    try:
        bucket = server.new_bucket()
        client = server.client()
        prefix = {"n": 0}

        def fresh() -> None:  # PDAS never overwrites an object: each upload run goes to new prefixes
            prefix["n"] += 1

        def pdas_put() -> None:
            with open_storage(server.url(bucket, f"pdas{prefix['n']}"), access_key=server.access_key,
                              secret_key=server.secret_key,
                              ca_file=server.ca_file) as storage:
                for path in files:
                    storage.upload(path.name, chunks_of(path))

        def tool_put() -> None:
            for path in files:
                client.upload_file(str(path), bucket, f"tool{prefix['n']}/{path.name}")

        def pdas_digest() -> None:
            with open_storage(server.url(bucket, f"pdas{prefix['n']}"), access_key=server.access_key,
                              secret_key=server.secret_key,
                              ca_file=server.ca_file) as storage:
                for path in files:
                    storage.digest(path.name)

        back = work / "s3-back"
        back.mkdir()

        def tool_get() -> None:
            for path in files:
                client.download_file(bucket, f"tool{prefix['n']}/{path.name}", str(back / path.name))
                hashlib.sha256((back / path.name).read_bytes()).hexdigest()

        upload = paired("S3 upload: PDAS s3:// / boto3 upload_file", pdas_put, tool_put, reset=fresh)
        return [upload, paired("S3 read-back digest: PDAS / boto3 download_file + sha256", pdas_digest, tool_get)]
    finally:
        server.process.stop()


def bench_age(files: list[Path], work: Path) -> list[tuple[str, float, float]]:
    from pyrage import x25519

    from connectors.storage import open_storage
    from connectors.storage.encrypted import encrypt_chunks, parse_recipients, store_encrypted

    recipient = str(x25519.Identity.generate().to_public())
    recipients = parse_recipients([recipient])
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}  # known at packing time
    target, plain = work / "encrypted", work / "age-cli"
    target.mkdir()
    plain.mkdir()

    def pdas_stream() -> None:
        for path in files:
            with open(work / "stream.age", "wb") as out:
                for data in encrypt_chunks(chunks_of(path), recipients):
                    out.write(data)

    def tool() -> None:
        for path in files:
            subprocess.run(["age", "-r", recipient, "-o", str(plain / f"{path.name}.age"), str(path)], check=True)

    def fresh() -> None:  # the encrypted target never overwrites an object: empty it before each run
        shutil.rmtree(target)
        target.mkdir()

    def pdas_target() -> None:
        with open_storage(f"file://{target}") as storage:
            for path in files:
                store_encrypted(storage, sha256=digests[path], extension=".tar.gz", archive_chunks=chunks_of(path),
                                manifest=b"{}", recipients=recipients)

    def tool_with_sums() -> None:  # what the target does beside encrypting: the digests, a durable write
        for path in files:
            out = plain / f"{path.name}.2.age"
            subprocess.run(["age", "-r", recipient, "-o", str(out), str(path)], check=True)
            subprocess.run(["sha256sum", str(path), str(out)], check=True, capture_output=True)
        subprocess.run(["sync"], check=True)

    return [paired("encryption: PDAS age stream (pyrage) / age -r", pdas_stream, tool),
            paired("encrypted target: PDAS / age -r + sha256sum both + sync", pdas_target, tool_with_sums,
                   reset=fresh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size", default="64M", help="bytes per file (default 64M)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side, medians compared (default 3)")
    parser.add_argument("--only", choices=["smb", "s3", "age"], help="one comparison only")
    args = parser.parse_args()
    global RUNS
    RUNS = max(1, args.runs)
    if os.geteuid() != 0:
        raise SystemExit("bench/storage_targets.py needs root: it starts smbd with a test account")
    for tool in ("smbd", "smbclient", "age"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            raise SystemExit(f"{tool} is not installed (deploy/dev.sh setup installs it)")
    work = Path(tempfile.mkdtemp(prefix="pdas-bench-storage-"))
    work.chmod(0o755)
    try:
        files = make_files(work / "archives", args.files, parse_size(args.size))
        total = sum(path.stat().st_size for path in files) / 1e6
        benches = {"smb": bench_smb, "s3": bench_s3, "age": bench_age}
        rows = [row for name, bench in benches.items() if args.only in (None, name) for row in bench(files, work)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.files} files, {total:,.0f} MB in all (incompressible)")
    for label, pdas, tool in rows:
        print(f"  {label:<58} PDAS {total / pdas:8.1f} MB/s  tool {total / tool:8.1f} MB/s  "
              f"ratio {tool / pdas:5.2f}x (target >= 0.8x)")


if __name__ == "__main__":
    main()
