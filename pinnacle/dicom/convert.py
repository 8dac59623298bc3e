"""One Pinnacle patient folder -> DICOM files: CT images, RT Structure Sets, RT Doses (RT Plans on request).

pymedphys's Pinnacle export (``pymedphys.pinnacle.PinnacleExport``, Apache-2.0) reads the Pinnacle files
and writes the RT objects; the CT images are ours (pinnacle.dicom.ct says why), and pinnacle.dicom.repair
mends small standard violations of pymedphys's RT objects. What pymedphys makes, per plan:

* RTSTRUCT: one per plan (its ROIs from ``plan.roi``, its points from ``plan.Points``);
* RTDOSE: one per trial of ``plan.Trial`` (the beams' dose volumes summed, scaled to the prescription);
* RTPLAN: one per trial, only with ``include_plan=True`` and labelled with ``RTPLAN_CAVEAT``.

Every object kind of every source either lands in ``objects`` or in ``failures`` with its reason; bad
input never raises a traceback: a folder that is not a Pinnacle patient raises ``ConversionError``
naming the file, anything later becomes a ``Failure``.
"""
from __future__ import annotations

import importlib.metadata
import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom

from pinnacle.dicom.ct import CtError, write_ct_series
from pinnacle.dicom.repair import repair
from pinnacle.dicom.ascii_view import ascii_view, restore_text
from pinnacle.dicom.results import CT, RTDOSE, RTPLAN, RTPLAN_CAVEAT, RTSTRUCT, ConversionResult, DicomObject, Failure

CONVERTER = "pymedphys"


class ConversionError(ValueError):
    """The folder cannot be read as a Pinnacle patient at all; the message names the file."""


class _Collect(logging.Handler):
    """Keeps pymedphys's warnings and errors: it reports some failures only by logging them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def converter_version() -> str:
    return importlib.metadata.version(CONVERTER)


def convert_patient(patient_dir: Path, output_dir: Path, *, include_plan: bool = False) -> ConversionResult:
    """Convert ``patient_dir`` (a ``Patient_<n>`` folder with its ``Patient`` file) into ``output_dir``."""
    patient_dir, output_dir = Path(patient_dir), Path(output_dir)
    if not (patient_dir / "Patient").is_file():
        raise ConversionError(f"{patient_dir / 'Patient'}: no Pinnacle Patient file, so not a patient folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    result = ConversionResult(patient_dir, output_dir, CONVERTER, converter_version())
    collect = _Collect()
    logger = logging.getLogger(f"{__name__}.pymedphys")
    logger.propagate = False  # its messages go to the result, not to the caller's log
    logger.setLevel(logging.DEBUG)
    logger.addHandler(collect)
    try:
        with warnings.catch_warnings():
            # pymedphys warns on every use that it is for research only (docs/rendition.md says so) and
            # pydicom about the keywords pymedphys misspells (pinnacle.dicom.repair mends them).
            warnings.simplefilter("ignore")
            with tempfile.TemporaryDirectory(prefix="pdas-pinnacle-ascii-") as scratch:
                source, rewritten = ascii_view(patient_dir, Path(scratch))
                if rewritten:
                    result.repairs.append("read through an ASCII view (pinnacle.dicom.ascii_view), text kept as "
                                          "UTF-8 (ISO_IR 192): " + ", ".join(rewritten))
                _convert(source, output_dir, include_plan, result, logger, collect)
    finally:
        logger.removeHandler(collect)
        result.converter_log = collect.lines
    return result


def _convert(patient_dir: Path, output_dir: Path, include_plan: bool, result: ConversionResult,
             logger: logging.Logger, collect: _Collect) -> None:
    from pymedphys.pinnacle import PinnacleExport  # imported here: pymedphys takes a while to load

    export = PinnacleExport(str(patient_dir), logger)
    try:
        patient_info = export.patient_info
        images = export.images
        plans = export.plans
    except Exception as error:  # pymedphys's YAML reading of Pinnacle syntax fails in many ways
        raise ConversionError(f"{patient_dir / 'Patient'}: pymedphys cannot read it ({_describe(error)})") from None
    frame_uids: dict[int, str] = {}
    for entry in patient_info.get("ImageSetList") or []:
        set_id = entry.get("ImageSetID") if isinstance(entry, dict) else None
        if not isinstance(set_id, int):
            result.failures.append(Failure(CT, "Patient", f"Patient: an ImageSetList entry without an ImageSetID "
                                                          f"({entry!r})"))
            continue
        image = next((i for i in images if i.image.get("ImageSetID") == set_id), None)
        if image is None:
            result.failures.append(Failure(CT, f"ImageSet_{set_id}", f"ImageSet_{set_id}.ImageInfo is missing"))
            continue
        frame_uids[set_id] = _first_slice(image)["FrameUID"]
        try:
            made = write_ct_series(image, patient_dir, output_dir)
            for obj in made:
                _restore_text_in_file(obj.path)
            result.objects += made
        except CtError as error:
            result.failures.append(Failure(CT, f"ImageSet_{set_id}", str(error)))
    for plan in plans:
        _convert_plan(plan, patient_dir, output_dir, include_plan, result, collect, frame_uids)


def _restore_text_in_file(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(65536)  # the text elements come before the pixel data: the rest is not read
    if b"~U" in head:
        ds = pydicom.dcmread(path)
        if restore_text(ds):
            ds.save_as(path, enforce_file_format=True)


def _first_slice(image: Any) -> dict:
    info = image.image_info
    return info["ImageInfo"] if isinstance(info, dict) else info[0]


def _convert_plan(plan: Any, patient_dir: Path, output_dir: Path, include_plan: bool, result: ConversionResult,
                  collect: _Collect, frame_uids: dict[int, str]) -> None:
    folder = Path(plan.path)
    name = folder.name
    kinds = [RTSTRUCT, RTDOSE] + ([RTPLAN] if include_plan else [])
    if not (folder / "plan.Trial").is_file():
        what = "is missing" if folder.is_dir() else "is missing (the Patient file lists the plan, the disk lacks it)"
        for kind in kinds:
            result.failures.append(Failure(kind, name, f"{name}/plan.Trial {what}"))
        return
    try:
        trials = [t["Name"] for t in plan.trials]
    except Exception as error:
        for kind in kinds:
            result.failures.append(Failure(kind, name, f"{name}/plan.Trial: pymedphys cannot read it "
                                                       f"({_describe(error)})"))
        return
    if plan.primary_image is None:
        for kind in kinds:
            result.failures.append(Failure(kind, name, f"{name}: its primary image set "
                                                       f"ImageSet_{plan.plan_info.get('PrimaryCTImageSetID')} "
                                                       "has no .ImageInfo, and pymedphys needs it"))
        return
    frame_uid = frame_uids.get(plan.plan_info.get("PrimaryCTImageSetID"), "")
    context = {"patient_info": plan.pinnacle.patient_info, "frame_of_reference_uid": frame_uid}
    _export(lambda out: plan.pinnacle.export_struct(plan, out), RTSTRUCT, name,
            f"{name}/plan.roi, {name}/plan.Points", output_dir, result, collect, context)
    structures = [o for o in result.objects if o.modality == RTSTRUCT and o.source == name]
    if structures:
        context = {**context, "structure_set_uid": structures[0].sop_instance_uid}
    for trial in trials:
        plan.active_trial = trial
        plan.generate_uids()  # pymedphys's UIDs hash the active trial's name: one dose and plan per trial
        source = f"{name}/{trial}"
        _export(lambda out: plan.pinnacle.export_dose(plan, out), RTDOSE, source,
                f"{name}/plan.Trial ({trial}) and its dose volumes", output_dir, result, collect,
                {**{k: v for k, v in context.items() if k != "structure_set_uid"}, "trial_info": plan.trial_info})
        if include_plan:
            _export(lambda out: plan.pinnacle.export_plan(plan, out), RTPLAN, source,
                    f"{name}/plan.Trial ({trial}), {name}/plan.Pinnacle.Machines", output_dir, result, collect,
                    context, caveat=RTPLAN_CAVEAT)


def _export(run: Callable[[str], None], kind: str, source: str, reads: str, output_dir: Path,
            result: ConversionResult, collect: _Collect, context: dict, caveat: str = "") -> None:
    """Run one pymedphys export into a scratch folder, mend and keep what it wrote, or record why not."""
    logged = len(collect.lines)
    with tempfile.TemporaryDirectory(prefix="pdas-rendition-") as scratch:
        try:
            run(scratch)
        except Exception as error:
            result.failures.append(Failure(kind, source, f"pymedphys failed on {reads}: {_describe(error)}"))
            return
        written = sorted(Path(scratch).glob("*.dcm"))
        if len(written) != 1:
            said = "; ".join(collect.lines[logged:]) or "nothing logged"
            result.failures.append(Failure(kind, source, f"pymedphys wrote {len(written)} files from {reads} ({said})"))
            return
        ds = pydicom.dcmread(written[0])
        restore_text(ds)
        for line in repair(ds, **context):
            if f"{kind}: {line}" not in result.repairs:
                result.repairs.append(f"{kind}: {line}")
        target = output_dir / written[0].name
        ds.save_as(target, enforce_file_format=True)
    result.objects.append(DicomObject(target, kind, str(ds.SOPClassUID), str(ds.SOPInstanceUID), source, caveat))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
