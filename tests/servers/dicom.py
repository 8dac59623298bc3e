"""What the three DICOM test nodes (``orthanc.py``, ``dcmqrscp.py``, ``qrscp.py``) share.

A node is a real DICOM server on a free loopback port, with a called AE title and a calling AE
title it knows (``CALLING``: the one PDAS's ``dicom-qr://`` URL names). Data goes in over the
network with C-STORE, as an R&V system's archive gets it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.servers.ports import HOST, accepts_connections
from tests.servers.process import ServerProcess

CALLING = "PDAS"  # the AE title the tests connect as; each node knows it (C-GET/C-MOVE peers)


@dataclass
class DicomNode:
    name: str  # "orthanc", "dcmqrscp", "qrscp": the server behind it
    host: str
    port: int
    aet: str  # the called AE title
    process: ServerProcess
    holds_rv_files: bool = False  # tests/rv_dicom.py stored its objects here

    def url(self, *, calling: str = CALLING, aet: str | None = None, extra: str = "") -> str:
        return f"dicom-qr://{aet or self.aet}@{self.host}:{self.port}?calling={calling}{extra}"

    def store(self, paths: Iterable[Path]) -> None:
        store_files(self.host, self.port, self.aet, paths)


def answers_echo(port: int, aet: str, *, host: str = HOST) -> bool:
    """Whether a DICOM node answers C-ECHO (Verification) as ``aet`` on host:port."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    if not accepts_connections(port, host):  # not up yet: spare the log pynetdicom's connection errors
        return False
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 2
    ae.connection_timeout = 1
    assoc = ae.associate(host, port, ae_title=aet)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0
    finally:
        assoc.release()


def store_files(host: str, port: int, aet: str, paths: Iterable[Path]) -> None:
    """C-STORE every file to the node in one association; raise with the first failure."""
    import pydicom
    from pynetdicom import AE, evt

    from connectors.rv.dicom_qr import as_plain_client

    datasets = [pydicom.dcmread(path) for path in paths]
    ae = AE(ae_title=CALLING)
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate(host, port, ae_title=aet,
                         evt_handlers=[(evt.EVT_CONN_OPEN, lambda event: as_plain_client(event.assoc))])
    if not assoc.is_established:
        raise RuntimeError(f"C-STORE to {aet}@{host}:{port}: association not established")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if not status or status.Status not in (0x0000, 0xB000, 0xB007, 0xB006):
                raise RuntimeError(f"C-STORE of {ds.SOPInstanceUID} to {aet}@{host}:{port} failed: {status}")
    finally:
        assoc.release()
