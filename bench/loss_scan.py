"""Benchmark of the loss scan: 150,000 first deliveries against 100,000 TPS plans and 500,000 archived plans.

    .venv/bin/python bench/loss_scan.py [--scale 1.0] [--sample 300] [--keep DIR] [--no-mix] [--dicom-qr 2500] [--dicom-qr-nodes orthanc]

Builds a throw-away SQLite database (bulk inserts), then for 10 %, 30 % and 100 % of the size
(one institution each) times the scan's matching: the R&V records to a DataFrame (with the MRN
aliases read and records of other planning systems set apart, as the scan does), the two index
queries (TPS plans, verified archived plans) and the vectorised classification. As in a real
department, 5 % of the records name another planning system and 1 % carry a patient's new MRN while
the TPS and the archives know the old one (an MRN alias); ``--no-mix`` leaves both out. Beside it, the
baseline a naive implementation would be: two ORM lookups per record, timed on a sample and
extrapolated. At full size it also times a whole ``run_loss_scan`` from a CSV file, including
writing every finding and the pending-archive rows, and reads the same RT objects from a folder
(``dicom-dir:``) and from Orthanc (and dcmqrscp on request) with ``dicom-qr://`` (the test suite's nodes,
needing the Debian packages orthanc and dcmtk), beside a plain pynetdicom C-FIND of the same records.
Prints numbers and ratios; asserts nothing.
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
FULL = {"deliveries": 150_000, "tps_plans": 100_000, "archived_plans": 500_000}
PLANS_PER_ARCHIVE = 5
NAMES = ["LT BREAST", "RT BREAST", "PROSTATE IMRT", "WHOLE BRAIN", "LUNG SBRT", "H&N VMAT", "RECTUM",
         "CERVIX", "ESOPHAGUS", "LIVER SBRT", "BONE MET", "PELVIS", "左乳 IMRT", "鼻咽癌 TOMO", "肺癌 SBRT",
         "Left Breast Boost Phase 2", "Prostate Bed 66Gy/33F"]
BATCH = 10_000
OTHER_TPS_SHARE, ALIASED_SHARE = 0.05, 0.01




def build_site(code: str, fraction: float, rng: random.Random, *, mix: bool = True):
    """An institution with its TPS and archive index rows; returns (institution, deliveries)."""
    from django.db import transaction

    from inventory.models import Archive, ArchiveCopy, ArchivedPlan, TpsPatient, TpsPlan
    from lossdetect.models import MrnAlias
    from sites.models import Institution, StorageTarget
    from connectors.rv.base import FirstDelivery

    zone = dt.timezone(dt.timedelta(hours=8))
    base = dt.datetime(2023, 1, 1, 8, tzinfo=zone)
    n_tps, n_arch = int(FULL["tps_plans"] * fraction), int(FULL["archived_plans"] * fraction)
    n_deliveries = int(FULL["deliveries"] * fraction)
    institution = Institution.objects.create(code=code, name=code, tps_url="file:///none", pending_group="ToArchive",
                                             clinical_groups=["Clinical"], non_clinical_groups=["Research"],
                                             time_zone="Asia/Shanghai")
    target = StorageTarget.objects.create(institution=institution, name="array", url="file:///none")

    def created_at(i: int) -> dt.datetime:
        return base + dt.timedelta(minutes=(i * 37) % (600 * 24 * 60))

    with transaction.atomic():
        patients = [TpsPatient(institution=institution, group=rng.choice(["ToArchive", "Clinical", "Research"]),
                               tps_path=f"Institution_1/Mount_0/Patient_{i}", tps_patient_id=i, mrn=f"T{i:07d}")
                    for i in range(n_tps // 2)]
        TpsPatient.objects.bulk_create(patients, batch_size=BATCH)
        patients = list(TpsPatient.objects.filter(institution=institution).order_by("id"))
        tps_plans = [TpsPlan(patient=patients[i // 2], plan_id=i % 2, name=rng.choice(NAMES),
                             trial_names=[f"Trial_{i % 3}"], created=created_at(i)) for i in range(len(patients) * 2)]
        TpsPlan.objects.bulk_create(tps_plans, batch_size=BATCH)
        archives = [Archive(institution=institution, name=f"A_{i}.tar.gz", mrn=f"A{i:07d}", status="verified")
                    for i in range(n_arch // PLANS_PER_ARCHIVE)]
        Archive.objects.bulk_create(archives, batch_size=BATCH)
        archives = list(Archive.objects.filter(institution=institution).order_by("id"))
        ArchiveCopy.objects.bulk_create([ArchiveCopy(archive=a, target=target, path=a.name, status="verified")
                                         for a in archives], batch_size=BATCH)
        archived = [ArchivedPlan(archive=archives[i // PLANS_PER_ARCHIVE], plan_id=i % PLANS_PER_ARCHIVE,
                                 name=rng.choice(NAMES), trial_names=["sMLC"], created=created_at(i))
                    for i in range(len(archives) * PLANS_PER_ARCHIVE)]
        ArchivedPlan.objects.bulk_create(archived, batch_size=BATCH)

    # A third of the deliveries are of TPS plans, a third of archived plans, a third of nothing known.
    # Mixed in (``mix``): 5 % name another planning system, 1 % carry a new MRN the TPS or archive does not know
    # (an alias old -> new is recorded, as after a renumbering).
    deliveries, aliases = [], {}
    for i in range(n_deliveries):
        kind = i % 3
        if kind == 0:
            plan = tps_plans[rng.randrange(len(tps_plans))]
            mrn, label, created = plan.patient.mrn, plan.name, plan.created
        elif kind == 1:
            plan = archived[rng.randrange(len(archived))]
            mrn, label, created = plan.archive.mrn, plan.name, plan.created
        else:
            mrn, label, created = f"L{i:07d}", rng.choice(NAMES), created_at(i)
        planning_system = "Pinnacle3"
        draw = rng.random() if mix else 1.0
        if draw < OTHER_TPS_SHARE:
            planning_system = rng.choice(["Elekta Monaco", "Varian Eclipse"])
        elif draw < OTHER_TPS_SHARE + ALIASED_SHARE and kind != 2:
            mrn = aliases.setdefault(mrn, f"N{mrn}")
        deliveries.append(FirstDelivery(mrn=mrn, patient_name="BENCH", plan_label=label[:16], plan_uid=f"1.2.{code}.{i}",
                                        course=None, first_delivery=created + dt.timedelta(days=rng.randint(0, 20)),
                                        planning_system=planning_system))
    MrnAlias.objects.bulk_create([MrnAlias(institution=institution, old_mrn=old, mrn=new, reason="bench")
                                  for old, new in aliases.items()], batch_size=BATCH)
    return institution, deliveries


def time_matching(institution, deliveries) -> tuple[float, dict[str, float], int, int]:
    """(seconds, seconds per step, records matched, records of other planning systems)."""
    from lossdetect.selectors import alias_graph, archived_plan_frame, tps_plan_frame
    from lossdetect.services.classify import candidates_frame, classify, deliveries_frame, split_other_tps
    from lossdetect.services.scan import rules_of

    steps = {}
    start = time.perf_counter()
    aliases = alias_graph(institution=institution)
    frame, other = split_other_tps(deliveries_frame(deliveries, patients=aliases.patients),
                                   is_other=institution.is_other_planning_system)
    steps["records"] = time.perf_counter() - start
    mark = time.perf_counter()
    mrns = aliases.expand(set(frame["mrn"]))
    tps = tps_plan_frame(institution=institution, mrns=mrns)
    archived = archived_plan_frame(institution=institution, mrns=mrns)
    steps["index queries"] = time.perf_counter() - mark
    mark = time.perf_counter()
    candidates = candidates_frame(tps, archived, active_groups=["ToArchive", "Clinical"], patients=aliases.patients)
    result = classify(frame, candidates, rules=rules_of(institution))
    steps["classify"] = time.perf_counter() - mark
    return time.perf_counter() - start, steps, int((result["status"] != "lost").sum()), len(other)


def time_per_record_baseline(institution, deliveries, sample: int, rng: random.Random) -> float:
    """Seconds per record of the naive way: two indexed ORM lookups per delivery, matched in Python."""
    from django.db.models import Exists, OuterRef

    from inventory.models import ArchiveCopy, ArchivedPlan, TpsPlan
    from lossdetect.services.classify import normalize_label

    verified_copy = ArchiveCopy.objects.filter(archive=OuterRef("archive"), status="verified")
    picked = rng.sample(deliveries, min(sample, len(deliveries)))
    start = time.perf_counter()
    for record in picked:
        key = normalize_label(record.plan_label)
        lo = record.first_delivery - dt.timedelta(days=institution.lookback_days)
        hi = record.first_delivery + dt.timedelta(days=institution.skew_days)
        found = [
            (created, name)
            for name, trials, created in ArchivedPlan.objects.filter(
                archive__institution=institution, archive__mrn=record.mrn, archive__status="verified",
                created__range=(lo, hi)).filter(Exists(verified_copy)).values_list("name", "trial_names", "created")
            if key in {normalize_label(n) for n in [name, *trials]}
        ] + [
            (created, name)
            for name, trials, created in TpsPlan.objects.filter(
                patient__institution=institution, patient__mrn=record.mrn, patient__present=True,
                created__range=(lo, hi)).values_list("name", "trial_names", "created")
            if key in {normalize_label(n) for n in [name, *trials]}
        ]
        max(found, default=None)
    return (time.perf_counter() - start) / len(picked)


def time_full_scan(institution, deliveries, work: Path) -> float:
    from demo_site.rv import RvPlan, write_csv
    from lossdetect.services.scan import run_loss_scan

    # The R&V file as demo_site writes it: naive site-local times (the deliveries are at +08:00, the
    # institution's zone), no course, one fraction each.
    plans = [RvPlan(mrn=d.mrn, last_name=d.patient_name, first_name="", label=d.plan_label, uid=d.plan_uid,
                    course=None, site_name=d.plan_label, machine="", created=d.first_delivery.replace(tzinfo=None),
                    fractions=[d.first_delivery.replace(tzinfo=None)], tps=d.planning_system) for d in deliveries]
    path = write_csv(work / f"{institution.code}.csv", plans, encoding="utf-8")
    institution.rv_url = f"csv:{path}"
    institution.save()
    start = time.perf_counter()
    scan = run_loss_scan(institution=institution, window_from=dt.date(2022, 1, 1), window_to=dt.date(2026, 12, 31),
                         trigger="manual", actor="bench", refresh_tps=False)
    elapsed = time.perf_counter() - start
    if scan.status != "done":
        raise SystemExit(f"full scan failed: {scan.error}")
    print(f"  full run_loss_scan from CSV (read, match, write {scan.summary['total']:,} findings, "
          f"{scan.summary['other_tps']:,} records of other planning systems and "
          f"{scan.summary['pending']:,} pending rows): {elapsed:.2f} s")
    return elapsed


def plain_c_find(node) -> tuple[float, int]:
    """The baseline: one bare pynetdicom C-FIND (Study Root, IMAGE level, every RT Beams Treatment Record with
    the keys PDAS needs), answers counted and thrown away: what listing the records costs at the least."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

    from tests.servers.dicom import CALLING

    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "PatientID",
                    "PatientName", "TreatmentDate", "TreatmentTime"):
        setattr(query, keyword, "")
    query.Modality = "RTRECORD"
    query.ReferencedRTPlanSequence = []
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 600
    start = time.perf_counter()
    assoc = ae.associate(node.host, node.port, ae_title=node.aet)
    if not assoc.is_established:
        raise RuntimeError(f"{node.name} refused the association")
    answers = 0
    try:
        for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            if status and status.Status in (0xFF00, 0xFF01) and identifier is not None:
                answers += 1
    finally:
        assoc.release()
    return time.perf_counter() - start, answers


def time_dicom_qr(work: Path, plans: int, *, nodes: tuple[str, ...]) -> None:
    """The ``dicom-qr://`` source against ``dicom-dir:`` over the same objects, and on each node against a
    plain C-FIND of the same records: ``plans`` RT Plans with four treatment records each, read as files and
    from each test node (loaded by C-STORE first, not timed)."""
    from zoneinfo import ZoneInfo

    from connectors.rv import open_rv_source
    from demo_site.rv import rv_plan, write_dicom
    from tests.servers.dcmqrscp import start_dcmqrscp
    from tests.servers.orthanc import start_orthanc

    zone = ZoneInfo("Asia/Shanghai")
    first = dt.datetime(2024, 1, 1, 8)
    objects = [rv_plan(f"{i:06d}", NAMES[i % len(NAMES)][:16], first + dt.timedelta(hours=i), fractions=4)
               for i in range(plans)]
    paths = write_dicom(work / "rv-dicom", objects)

    def read(url: str) -> tuple[float, int]:
        start = time.perf_counter()
        with open_rv_source(url, zone=zone) as source:
            result = source.read()
        return time.perf_counter() - start, len(result.records)

    folder_s, found = read(f"dicom-dir:{work / 'rv-dicom'}")
    print(f"\ndicom-qr, {plans:,} plans, {plans * 4:,} treatment records ({len(paths):,} DICOM objects):")
    print(f"  dicom-dir: {folder_s:.2f} s ({found:,} first deliveries)")
    starters = {"orthanc": start_orthanc, "dcmqrscp": start_dcmqrscp}
    for name in nodes:
        start_node = starters[name]
        try:
            node = start_node(work / start_node.__name__)
        except BaseException as exc:  # a missing binary skips (pytest's skip is a BaseException)
            print(f"  {start_node.__name__}: not run ({' '.join(str(exc).split())[:120]})")
            continue
        try:
            mark = time.perf_counter()
            node.store(paths)
            stored = time.perf_counter() - mark
            elapsed, got = read(node.url())
            plain_s, answers = plain_c_find(node)
            print(f"  {node.name}: dicom-qr {elapsed:.2f} s ({got:,} first deliveries); plain C-FIND of the "
                  f"records {plain_s:.2f} s ({answers:,} answers): dicom-qr takes x{elapsed / plain_s:.1f} the plain "
                  f"C-FIND, x{elapsed / folder_s:.1f} the folder (C-STORE of the objects took {stored:.1f} s)")
        finally:
            node.process.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (default 1.0)")
    parser.add_argument("--sample", type=int, default=300, help="records timed for the per-record baseline")
    parser.add_argument("--keep", help="build the database in this folder and keep it")
    parser.add_argument("--no-full-scan", action="store_true", help="skip the whole-scan timing")
    parser.add_argument("--dicom-qr", type=int, default=2500, metavar="PLANS",
                        help="plans (4 treatment records each) read by dicom-qr:// vs dicom-dir: and a plain C-FIND "
                             "(default 2500: 10,000 records; 0 skips)")
    parser.add_argument("--dicom-qr-nodes", default="orthanc",
                        help="comma-separated: orthanc, dcmqrscp (slower: it fetches every object; default orthanc)")
    parser.add_argument("--no-mix", action="store_true",
                        help="no records of other planning systems and no MRN aliases (5 %% and 1 %% by default)")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pdas-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(6)
    try:
        setup_django(work, fast=True)
        rows = []
        for fraction in (0.1, 0.3, 1.0):
            size = fraction * args.scale
            mark = time.perf_counter()
            institution, deliveries = build_site(f"B{int(fraction * 100)}", size, rng, mix=not args.no_mix)
            print(f"built {fraction:>4.0%}: {len(deliveries):,} deliveries, {int(FULL['tps_plans'] * size):,} TPS plans, "
                  f"{int(FULL['archived_plans'] * size):,} archived plans in {time.perf_counter() - mark:.1f} s",
                  flush=True)
            elapsed, steps, matched, other = time_matching(institution, deliveries)
            rows.append((fraction, len(deliveries), elapsed, steps, (matched, other), institution, deliveries))
        print()
        print(f"{'size':>5} {'deliveries':>11} {'scan s':>7} {'µs/record':>10}  steps")
        for fraction, n, elapsed, steps, (matched, other), _inst, _d in rows:
            detail = ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
            print(f"{fraction:>5.0%} {n:>11,} {elapsed:>7.2f} {elapsed / n * 1e6:>10.1f}  {detail} "
                  f"({matched:,} matched, {other:,} of other planning systems)")
        fraction, n, elapsed, _steps, _m, institution, deliveries = rows[-1]
        small = rows[0]
        print(f"growth 10 % -> 100 %: x{elapsed / small[2]:.1f} time for x{n / small[1]:.0f} size")
        per_record = time_per_record_baseline(institution, deliveries, args.sample, rng)
        baseline = per_record * n
        print(f"per-record ORM baseline: {per_record * 1e3:.2f} ms/record on {args.sample} records, "
              f"{baseline:.0f} s extrapolated to {n:,}")
        print(f"vectorised scan: {elapsed:.2f} s ({'under' if elapsed < 5 else 'OVER'} 5 s), "
              f"{baseline / elapsed:.0f}x faster than the baseline (target >= 50x)")
        if not args.no_full_scan:
            time_full_scan(institution, deliveries, work)
        if args.dicom_qr:
            time_dicom_qr(work, args.dicom_qr, nodes=tuple(n.strip() for n in args.dicom_qr_nodes.split(",") if n))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
