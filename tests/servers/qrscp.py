"""``qrscp_node``: pynetdicom's own qrscp app as a DICOM node on a free loopback port (dicom-qr:// tests).

``python -m pynetdicom qrscp -c <ini>``: a Storage and Query/Retrieve SCP whose index is an SQLite
database (through SQLAlchemy) with a fixed set of attributes, like dcmqrscp's. It binds
127.0.0.1 only. It does not check the called AE title (any title is accepted), so the
refused-association tests use the other two nodes.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.dicom import CALLING, DicomNode, answers_echo
from tests.servers.ports import HOST, free_port
from tests.servers.process import ServerProcess, start_on_free_port

AET = "QRSCP"


def qrscp_config(workdir: Path, port: int, *, aet: str = AET) -> str:
    # The section names a C-MOVE destination (PDAS itself); C-GET needs none.
    return (f"[DEFAULT]\nae_title: {aet}\nport: {port}\nmax_pdu: 16382\nacse_timeout: 30\ndimse_timeout: 30\n"
            f"network_timeout: 30\nbind_address: {HOST}\ninstance_location: {workdir / 'instances'}\n"
            f"database_location: {workdir / 'instances.sqlite'}\nlog_identifier: False\n\n"
            f"[{CALLING}]\naddress: {HOST}\nport: 104\n")


def start_qrscp(workdir: Path) -> DicomNode:
    workdir.mkdir(parents=True, exist_ok=True)

    def make(port: int) -> ServerProcess:
        config = workdir / "qrscp.ini"
        config.write_text(qrscp_config(workdir, port))
        return ServerProcess("qrscp", [sys.executable, "-m", "pynetdicom", "qrscp", "-c", config],
                             log_path=workdir / "qrscp.log")

    process, port = start_on_free_port(make, lambda port: answers_echo(port, AET), pick_port=free_port)
    return DicomNode(name="qrscp", host=HOST, port=port, aet=AET, process=process)


@pytest.fixture(scope="session")
def qrscp_node(tmp_path_factory) -> Iterator[DicomNode]:
    """An empty pynetdicom qrscp (AE ``QRSCP``) for this test session."""
    node = start_qrscp(tmp_path_factory.mktemp("qrscp"))
    try:
        yield node
    finally:
        node.process.stop()
