"""Benchmark of curation: a pending-archive group of 2,000 generated patients, first run vs repeat run.

    .venv/bin/python bench/curation.py [--patients 2000] [--keep DIR]

Writes small Pinnacle patient folders with ``demo_site``'s tree writer (the whole demo site
with its R&V files takes about a minute at this size; the folders alone a few seconds): mostly clean
patients, with a share of naming problems, CopyOf_/TEST plans, image-only patients, GB18030 names and
shared MRNs. Then, on a throw-away SQLite database, times ``run_curation`` twice: the first run
reads and parses every patient; the repeat run, with nothing changed, only walks the folders (the
sync's fingerprints) and classifies again. Prints seconds and patients/s for both and the ratio;
asserts nothing. The issue's bar: the repeat run under 10 seconds.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import setup_django  # noqa: E402  (bench/common.py, beside this script)
SURNAMES = ("王", "李", "张", "刘", "陈", "欧阳", "SMITH", "GARCIA", "NGUYEN")
GIVEN = ("伟", "芳", "娜娜", "建华", "JOHN", "MARIA", "ANNA")
SITES = ("LT BREAST", "RT BREAST", "LUNG SBRT", "NPC VMAT", "PROSTATE", "CERVIX", "BRAIN WBRT", "鼻咽癌 TOMO")




def write_tree(root: Path, patients: int, rng: random.Random) -> dict[str, int]:
    """The pending group (Institution_2) plus a small clinical group; returns how many of each kind."""
    from demo_site.tree import GroupSpec, ImageSetSpec, PlanSpec, write_institution_file, write_patient

    base = dt.datetime(2024, 1, 1, 9, 0)
    kinds = {"ready": 0, "naming": 0, "transitional": 0, "image_only": 0, "shared_mrn": 0}
    pending, clinical = GroupSpec(2, "ToArchive"), GroupSpec(1, "Clinical")
    for n in range(patients):
        roll = rng.random()
        last, first = rng.choice(SURNAMES), rng.choice(GIVEN)
        mrn = f"{2020 + n % 5}{n:06d}"
        created = base + dt.timedelta(days=rng.randrange(300), minutes=n)
        names = [rng.choice(SITES)]
        if roll < 0.05:
            first, kind = "", "naming"
        elif roll < 0.08:
            last, kind = f"{last}/{first}", "naming"
        elif roll < 0.15:
            names.append(f"CopyOf_1_{names[0]}")
            kind = "transitional"
        elif roll < 0.17:
            names.append("TEST")
            kind = "transitional"
        elif roll < 0.20:
            names, kind = [], "image_only"
        elif roll < 0.21 and n:
            mrn, kind = f"{2020 + (n - 1) % 5}{n - 1:06d}", "shared_mrn"
        else:
            kind = "ready"
        kinds[kind] += 1
        plans = [PlanSpec(i, name, trials=["Trial_1"], created=created + dt.timedelta(days=i),
                          written=created + dt.timedelta(days=i), modified=created + dt.timedelta(days=i + 1))
                 for i, name in enumerate(names)]
        images = [ImageSetSpec(0, z_dim=2, x_dim=8, y_dim=8, scanned=created - dt.timedelta(days=3))]
        record = write_patient(root, "Institution_2", 10_000 + n, last_name=last, first_name=first, mrn=mrn,
                               plans=plans, image_sets=images, encoding="gb18030" if n % 3 == 0 else "utf-8",
                               seed=n)
        pending.patients.append(record)
    clinical.patients.append(write_patient(root, "Institution_1", 1, last_name="CLINICAL", first_name="ONE",
                                           mrn="C0001", plans=[PlanSpec(0, "LUNG")],
                                           image_sets=[ImageSetSpec(0, z_dim=2, x_dim=8, y_dim=8)]))
    write_institution_file(root, [clinical, pending])
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="pdas-bench-curation-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        setup_django(work)
        from sites.models import Institution
        from curation.services.curate import run_curation

        root = work / "Patients"
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        kinds = write_tree(root, args.patients, random.Random(args.seed))
        print(f"tree: {args.patients} pending patients written in {time.monotonic() - started:.1f} s "
              f"({', '.join(f'{k} {v}' for k, v in kinds.items())})")
        institution, _ = Institution.objects.update_or_create(
            code="BENCH", defaults={"name": "Bench", "tps_url": f"file://{root}", "pending_group": "ToArchive",
                                    "clinical_groups": ["Clinical"], "time_zone": "Asia/Shanghai"})

        results = []
        for label in ("first run (every patient parsed)", "repeat run (nothing changed)"):
            started = time.monotonic()
            run = run_curation(institution=institution, actor="bench")
            seconds = time.monotonic() - started
            patients = run.counts["patients"]
            results.append(seconds)
            categories = ", ".join(f"{c} {run.counts[c]}" for c in
                                   ("ready", "naming", "transitional", "image_only", "unreadable") if run.counts[c])
            print(f"{label:<36} {seconds:7.2f} s  {patients / seconds:8.0f} patients/s  "
                  f"(parsed {run.counts['patients_parsed']}, sync {run.counts['sync_seconds']:.2f} s, "
                  f"classify+store {seconds - run.counts['sync_seconds']:.2f} s; {categories})")
        print(f"repeat run / first run: {results[1] / results[0]:.2f} "
              f"(first run is {results[0] / results[1]:.1f}x slower); issue bar: repeat < 10 s")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
