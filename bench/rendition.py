"""The DICOM-RT rendition of one patient: PDAS's conversion and validation beside pymedphys's own command line.

    .venv/bin/python bench/rendition.py [--size 512x512x100] [--repeat 1]

One generated patient (``demo_site.tree.write_patient``: one plan with two trials, one CT image set of the
given size, a CT-like body as the demo site writes it), then, in the same run on the same machine:

1. PDAS: ``pinnacle.dicom.convert.convert_patient`` (CT by PDAS, RTSTRUCT and RTDOSE by pymedphys as a library)
   and ``pinnacle.dicom.validate.validate_rendition`` (dciodvfy on every object, then the references);
2. the baseline, pymedphys's console script: ``pymedphys pinnacle export <patient> -o <dir> -m RTSTRUCT -m RTDOSE``
   (its first plan, its first trial; the figure includes the interpreter's start-up, printed apart). pymedphys's own CT writer cannot run with the pinned NumPy and pydicom
   (docs/rendition.md, "CT images are ours"): ``-m CT`` is tried once and its outcome printed, never timed.

Prints seconds per patient, objects made and the ratios; asserts nothing.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PYMEDPHYS = Path(sys.executable).with_name("pymedphys")


def make_patient(root: Path, size: tuple[int, int, int]) -> Path:
    from demo_site.tree import ImageSetSpec, PlanSpec, write_patient

    x, y, z = size
    write_patient(root, patient_id=1, mrn="000123", plans=[PlanSpec(0, "PLAN A", trials=["Trial_1", "Trial_2"])],
                           image_sets=[ImageSetSpec(0, x_dim=x, y_dim=y, z_dim=z)])
    folder = next(root.rglob("Patient_1"))
    return folder


def run_pdas(patient: Path, out: Path) -> tuple[float, float, int, int]:
    from pinnacle.dicom.convert import convert_patient
    from pinnacle.dicom.validate import validate_rendition

    started = time.perf_counter()
    result = convert_patient(patient, out)
    converted = time.perf_counter()
    report = validate_rendition([o.path for o in result.objects])
    done = time.perf_counter()
    return converted - started, done - started, len(result.objects), len(result.failures) + len(report.failures)


def run_cli(patient: Path, out: Path, modalities: list[str]) -> tuple[float, int, int]:
    command = [str(PYMEDPHYS), "pinnacle", "export", str(patient), "-o", str(out)]
    for modality in modalities:
        command += ["-m", modality]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    return seconds, len(list(out.rglob("*.dcm"))) if out.exists() else 0, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="512x512x100", help="CT voxels, XxYxZ (default 512x512x100)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, the best one kept")
    args = parser.parse_args()
    size = tuple(int(n) for n in args.size.lower().split("x"))
    if len(size) != 3 or min(size) < 1:
        parser.error("--size is XxYxZ, for instance 512x512x100")
    if not PYMEDPHYS.exists():
        sys.exit(f"{PYMEDPHYS} is missing: install the pinned requirements")
    work = Path(tempfile.mkdtemp(prefix="pdas-bench-rendition-"))
    try:
        started = time.perf_counter()
        patient = make_patient(work / "Patients", size)  # type: ignore[arg-type]
        print(f"patient: CT {size[0]}x{size[1]}x{size[2]} ({size[0] * size[1] * size[2] * 2 / 1e6:.0f} MB of voxels), "
              f"1 plan, 2 trials; generated in {time.perf_counter() - started:.1f} s")
        pdas_convert, pdas_total, pdas_objects, pdas_failures = [], [], 0, 0
        cli_seconds, cli_objects, cli_code = [], 0, 0
        for run in range(args.repeat):
            convert, total, pdas_objects, pdas_failures = run_pdas(patient, work / f"pdas-{run}")
            pdas_convert.append(convert)
            pdas_total.append(total)
            seconds, cli_objects, cli_code = run_cli(patient, work / f"cli-{run}", ["RTSTRUCT", "RTDOSE"])
            cli_seconds.append(seconds)
        ct_seconds, ct_objects, ct_code = run_cli(patient, work / "cli-ct", ["CT"])
        started = time.perf_counter()
        subprocess.run([str(PYMEDPHYS), "pinnacle", "export", "--help"], capture_output=True, check=False)
        startup = time.perf_counter() - started
        best_convert, best_total, best_cli = min(pdas_convert), min(pdas_total), min(cli_seconds)
        print(f"PDAS convert_patient (CT + RTSTRUCT + RTDOSE, both trials): {best_convert:7.2f} s, "
              f"{pdas_objects} objects")
        print(f"PDAS convert_patient + validate_rendition:                   {best_total:7.2f} s, "
              f"{pdas_failures} failures")
        print(f"pymedphys pinnacle export -m RTSTRUCT -m RTDOSE (CLI):        {best_cli:7.2f} s, "
              f"{cli_objects} objects, exit {cli_code}")
        print(f"pymedphys pinnacle export -m CT (CLI, not timed as baseline):  {ct_seconds:7.2f} s, "
              f"{ct_objects} objects, exit {ct_code}")
        print(f"pymedphys start-up alone (pinnacle export --help):            {startup:7.2f} s (in the CLI figures)")
        print(f"ratio PDAS convert / pymedphys CLI:            {best_convert / best_cli:5.2f}")
        print(f"ratio PDAS convert + validate / pymedphys CLI: {best_total / best_cli:5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
