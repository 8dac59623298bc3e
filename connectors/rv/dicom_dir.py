"""``dicom-dir:<path>``: RT Plan and treatment record files in a folder (docs/contracts.md §2.3).

Every file goes to ``dicom_records.FirstDeliveries``, whose rules the ``dicom-qr://`` source shares:
a plan is an RT Plan's ``SOPInstanceUID``; its first delivery the earliest ``TreatmentDate`` +
``TreatmentTime`` of the treatment records naming it; its planning system the RT Plan's
``Manufacturer``/``ManufacturerModelName``, never a record's (docs/contracts.md §2.6). A record naming
a plan that is not in the folder, and any file that is neither, is reported. Subfolders are read;
links and dot-files are not followed.
"""
from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pydicom
from pydicom.errors import InvalidDicomError

from connectors.rv.base import RowProblem, RvError, RvReadResult, RvSource
from connectors.rv.dicom_records import FirstDeliveries


class DicomDirSource(RvSource):
    def __init__(self, root: Path, *, url: str, zone: ZoneInfo):
        super().__init__(url=url, zone=zone)
        self.root = root

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            raise RvError(f"{self.root}: not a folder", retryable=True)
        found: list[Path] = []
        for folder, dirs, files in os.walk(self.root, onerror=self._walk_error):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(folder) / f for f in sorted(files) if not f.startswith("."))
        return [p for p in found if not p.is_symlink()]

    def _walk_error(self, exc: OSError) -> None:
        raise RvError(f"{exc.filename}: cannot list ({exc.strerror})", retryable=True)

    def read(self) -> RvReadResult:
        result = RvReadResult()
        deliveries = FirstDeliveries(self.zone, missing_plan="not in the folder")
        for path in self._files():
            where = str(path.relative_to(self.root))
            try:
                deliveries.add(pydicom.dcmread(path, stop_before_pixels=True, defer_size="256 KB"), where)
            except InvalidDicomError:
                result.problems.append(RowProblem(where, "not a DICOM file"))
            except ValueError as exc:
                result.problems.append(RowProblem(where, str(exc)))
            except Exception as exc:  # a truncated or corrupt file: report it, read the rest
                result.problems.append(RowProblem(where, f"unreadable DICOM ({' '.join(str(exc).split())})"))
        return deliveries.result(result)
