"""``dcmqrscp_node``: dcmtk's dcmqrscp as a DICOM node on a free loopback port (dicom-qr:// tests).

dcmqrscp answers from its own index (``index.dat`` in the storage area), which holds a fixed set
of attributes: a C-FIND asking for anything else (a treatment record's ``TreatmentDate`` or
``ReferencedRTPlanSequence``) gets it back empty, so a client must fetch the objects. The
configuration knows one called AE title (``AET``) and refuses any other, and one peer (the
tests' calling AE on 127.0.0.1). Like Orthanc, dcmqrscp cannot bind one address: its port is
open on every interface.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.dicom import CALLING, DicomNode, answers_echo
from tests.servers.ports import HOST, free_port
from tests.servers.process import ServerProcess, require_binary, start_on_free_port

AET = "DCMQR"


def dcmqrscp_config(port: int, storage: Path, *, aet: str = AET) -> str:
    # Peers "ANY": the AE table's access list; the host table names PDAS for C-MOVE destinations.
    return (f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n\n"
            f"HostTable BEGIN\npdas = ({CALLING}, {HOST}, 104)\nHostTable END\n\n"
            "VendorTable BEGIN\nVendorTable END\n\n"
            f"AETable BEGIN\n{aet} {storage} RW (1000, 1024mb) ANY\nAETable END\n")


def start_dcmqrscp(workdir: Path) -> DicomNode:
    binary = require_binary("dcmqrscp", "/usr/bin/dcmqrscp", package="dcmtk")
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)

    def make(port: int) -> ServerProcess:
        config = workdir / "dcmqrscp.cfg"
        config.write_text(dcmqrscp_config(port, storage))
        # A child per association (dcmqrscp 3.6.7's --single-process crashed after the first
        # association here); names are handed back in UTF-8, not converted to ASCII.
        argv = [binary, "--config", config, "--convert-to-utf8", "--disable-host-lookup",
                "--acse-timeout", "10", "--dimse-timeout", "30"]
        return ServerProcess("dcmqrscp", argv, log_path=workdir / "dcmqrscp.log")

    process, port = start_on_free_port(make, lambda port: answers_echo(port, AET), pick_port=free_port)
    return DicomNode(name="dcmqrscp", host=HOST, port=port, aet=AET, process=process)


@pytest.fixture(scope="session")
def dcmqrscp_node(tmp_path_factory) -> Iterator[DicomNode]:
    """An empty dcmqrscp (called AE ``DCMQR``) for this test session."""
    node = start_dcmqrscp(tmp_path_factory.mktemp("dcmqrscp"))
    try:
        yield node
    finally:
        node.process.stop()
