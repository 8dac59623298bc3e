"""R&V sources behind one interface. ``open_institution_rv`` opens an institution's configured source.

URLs: ``csv:<path>``, ``dicom-dir:<path>`` (both also as ``csv:///path``), ``mosaiq+<db-url>``
(``mosaiq+mssql://user@host/db``, ``mosaiq+postgresql://...``, ``mosaiq+sqlite:///path``).
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from connectors.rv.base import FirstDelivery, RowProblem, RvError, RvReadResult, RvSource

# The scheme registry: what the opener accepts is what the site configuration accepts.
SCHEMES = {"csv": "a CSV file (csv:/path)", "dicom-dir": "a folder of DICOM files (dicom-dir:/path)",
           "mosaiq+": "a MOSAIQ database (mosaiq+mssql://..., mosaiq+postgresql://..., mosaiq+sqlite:///...)"}

__all__ = ["SCHEMES", "FirstDelivery", "RowProblem", "RvError", "RvReadResult", "RvSource", "open_rv_source"]


def _local_path(url: str, scheme: str) -> Path:
    rest = url[len(scheme) + 1:]
    path = unquote(urlsplit(url).path) if rest.startswith("//") else rest
    if not path:
        raise RvError(f"{url}: no path")
    return Path(path)


def open_rv_source(url: str, *, zone: ZoneInfo, password: str | None = None) -> RvSource:
    """The source a URL names; naive source times are read in ``zone`` (the site's time)."""
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "csv":
        from connectors.rv.csv_source import CsvSource

        return CsvSource(_local_path(url, scheme), url=url, zone=zone)
    if scheme == "dicom-dir":
        from connectors.rv.dicom_dir import DicomDirSource

        return DicomDirSource(_local_path(url, scheme), url=url, zone=zone)
    if scheme.startswith("mosaiq+"):
        from connectors.rv.mosaiq import MosaiqSource, mosaiq_connector

        return MosaiqSource(mosaiq_connector(url, password=password), url=url, zone=zone)
    raise RvError(f"R&V source {url!r}: unsupported (use csv:<path>, dicom-dir:<path> or mosaiq+<db-url>)")
