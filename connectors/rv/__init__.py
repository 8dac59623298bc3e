"""R&V sources behind one interface. ``open_institution_rv`` opens an institution's configured source.

URLs: ``csv:<path>``, ``dicom-dir:<path>`` (both also as ``csv:///path``), ``mosaiq+<db-url>``
(``mosaiq+mssql://user@host/db``, ``mosaiq+postgresql://...``, ``mosaiq+sqlite:///path``),
``dicom-qr://<called-AE>@<host>:<port>?calling=<our-AE>`` (a DICOM node, ``dicom_qr``).
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from connectors.urls import inline_password_problem, redact_url
from connectors.rv.base import FirstDelivery, RowProblem, RvError, RvReadResult, RvSource
from connectors.rv.dicom_qr_url import parse_dicom_qr_url

# The scheme registry: what the opener accepts is what the site configuration accepts.
SCHEMES = {"csv": "a CSV file (csv:/path)", "dicom-dir": "a folder of DICOM files (dicom-dir:/path)",
           "dicom-qr": "a DICOM node queried with C-FIND/C-GET (dicom-qr://CALLED-AE@host:port?calling=OUR-AE)",
           "mosaiq+": "a MOSAIQ database (mosaiq+mssql://..., mosaiq+postgresql://..., mosaiq+sqlite:///...)"}

__all__ = ["SCHEMES", "url_problem", "url_shape_problem", "FirstDelivery", "RowProblem", "RvError", "RvReadResult", "RvSource", "open_rv_source"]


def _local_path(url: str, scheme: str) -> Path:
    rest = url[len(scheme) + 1:]
    path = unquote(urlsplit(url).path) if rest.startswith("//") else rest
    if not path:
        raise RvError(f"{redact_url(url)}: no path")
    return Path(path)


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an R&V source (``csv:PATH``, ``dicom-dir:PATH``, ``dicom-qr://...``, ``mosaiq+<db-url>``),
    or None: the one check of an R&V URL: the site configuration asks all of it, ``open_rv_source`` its shape."""
    return inline_password_problem(url, "rv_password_env") or url_shape_problem(url)


def url_shape_problem(url: str) -> str | None:
    """The protocol's own rules for the URL (no inline-password rule), or None: what the opener checks."""
    shown = redact_url(url)
    for prefix in ("csv:", "dicom-dir:"):
        if url.startswith(prefix):
            path = url[len(prefix):]
            if not path.startswith("/"):
                return f"{shown}: {prefix} needs an absolute path, as in {prefix}/data/rv"
            return None
    if url.lower().startswith("dicom-qr:"):
        try:
            parse_dicom_qr_url(url)
        except ValueError as exc:
            return f"{shown}: {exc}"
        return None
    if url.startswith("mosaiq+"):
        database_url = url[len("mosaiq+"):]
        parts = urlsplit(database_url)
        if not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme) or "://" not in database_url:
            return f"{shown}: mosaiq+ must be followed by a database URL, as in mosaiq+mssql://user@host/MOSAIQ"
        if not (parts.netloc or parts.path.strip("/")):
            return f"{shown}: the database URL names no host or database"
        return None
    return (f"{shown}: unsupported R&V source: use csv:PATH, dicom-dir:PATH, "
            "dicom-qr://CALLED-AE@host:port?calling=OUR-AE or mosaiq+<database URL>")


def open_rv_source(url: str, *, zone: ZoneInfo, password: str | None = None) -> RvSource:
    """The source a URL names; naive source times are read in ``zone`` (the site's time)."""
    url = url.strip()
    if problem := url_shape_problem(url):
        raise RvError(problem)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "csv":
        from connectors.rv.csv_source import CsvSource

        return CsvSource(_local_path(url, scheme), url=url, zone=zone)
    if scheme == "dicom-dir":
        from connectors.rv.dicom_dir import DicomDirSource

        return DicomDirSource(_local_path(url, scheme), url=url, zone=zone)
    if scheme == "dicom-qr":
        from connectors.rv.dicom_qr import DicomQrSource

        return DicomQrSource(parse_dicom_qr_url(url), url=url, zone=zone)
    if scheme.startswith("mosaiq+"):
        from connectors.rv.mosaiq import MosaiqSource, mosaiq_connector

        return MosaiqSource(mosaiq_connector(url, password=password), url=url, zone=zone)
    raise RvError(f"R&V source {redact_url(url)!r}: unsupported (use csv:<path>, dicom-dir:<path>, dicom-qr://... "
                  "or mosaiq+<db-url>)")
