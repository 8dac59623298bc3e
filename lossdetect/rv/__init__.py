"""R&V sources behind one interface. ``open_institution_rv`` opens an institution's configured source.

URLs: ``csv:<path>``, ``dicom-dir:<path>`` (both also as ``csv:///path``), ``mosaiq+<db-url>``
(``mosaiq+mssql://user@host/db``, ``mosaiq+postgresql://...``, ``mosaiq+sqlite:///path``).
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings

from lossdetect.rv.base import FirstDelivery, RowProblem, RvError, RvReadResult, RvSource

__all__ = ["FirstDelivery", "RowProblem", "RvError", "RvReadResult", "RvSource", "open_institution_rv",
           "open_rv_source"]


def _local_path(url: str, scheme: str) -> Path:
    rest = url[len(scheme) + 1:]
    path = unquote(urlsplit(url).path) if rest.startswith("//") else rest
    if not path:
        raise RvError(f"{url}: no path")
    return Path(path)


def open_rv_source(url: str, *, password: str | None = None, zone: ZoneInfo | None = None) -> RvSource:
    """The source a URL names; naive source times are read in ``zone`` (default: settings.TIME_ZONE)."""
    url = url.strip()
    zone = zone or ZoneInfo(settings.TIME_ZONE)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "csv":
        from lossdetect.rv.csv_source import CsvSource

        return CsvSource(_local_path(url, scheme), url=url, zone=zone)
    if scheme == "dicom-dir":
        from lossdetect.rv.dicom_dir import DicomDirSource

        return DicomDirSource(_local_path(url, scheme), url=url, zone=zone)
    if scheme.startswith("mosaiq+"):
        from lossdetect.rv.mosaiq import MosaiqSource, mosaiq_connector

        return MosaiqSource(mosaiq_connector(url, password=password), url=url, zone=zone)
    raise RvError(f"R&V source {url!r}: unsupported (use csv:<path>, dicom-dir:<path> or mosaiq+<db-url>)")


def open_institution_rv(institution) -> RvSource:
    """The institution's R&V source, with its password from ``rv_password_env`` and its site time."""
    if not institution.rv_url.strip():
        raise RvError(f"institution {institution.code} has no R&V source (rv_url is empty)")
    password = None
    if institution.rv_password_env:
        password = os.environ.get(institution.rv_password_env)
        if password is None:
            raise RvError(f"institution {institution.code}: environment variable "
                          f"{institution.rv_password_env} (the R&V password) is not set")
    return open_rv_source(institution.rv_url, password=password, zone=institution.zone)
