"""``orthanc_node``: Debian's Orthanc as a DICOM node on a free loopback port (dicom-qr:// tests).

The configuration is written from scratch (nothing from /etc/orthanc): storage in the session's
temporary folder, no HTTP server (data comes in by C-STORE), no plugins or Lua scripts, the called
AE title checked, and only the test's calling AE (``dicom.CALLING``, from 127.0.0.1) allowed to
store, find and get. Orthanc 1.10 has no option to bind its DICOM port to one address: it
listens on every interface, but answers only that AE from loopback.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.dicom import CALLING, DicomNode, answers_echo
from tests.servers.ports import HOST, free_port
from tests.servers.process import ServerProcess, require_binary, start_on_free_port

AET = "RVARCH"


def orthanc_config(workdir: Path, port: int, *, aet: str = AET) -> dict:
    return {
        "Name": "PDAS test Orthanc",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "storage"),
        "DicomServerEnabled": True,
        "DicomAet": aet,
        "DicomPort": port,
        "DicomCheckCalledAet": True,  # a wrong called AE title is refused, as on a real archive
        "DicomCheckModalityHost": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        # Known peers: PDAS may echo, store (loading the data), find, get and move (to itself).
        "DicomModalities": {"pdas": [CALLING, HOST, 104]},
        "DicomScpTimeout": 30,
        "HttpServerEnabled": False,
        "RemoteAccessAllowed": False,
        "Plugins": [],
        "LuaScripts": [],
        "SaveJobs": False,
        "DefaultEncoding": "Utf8",
    }


def start_orthanc(workdir: Path) -> DicomNode:
    binary = require_binary("Orthanc", "/usr/sbin/Orthanc", package="orthanc")
    workdir.mkdir(parents=True, exist_ok=True)

    def make(port: int) -> ServerProcess:
        config = workdir / "orthanc.json"
        config.write_text(json.dumps(orthanc_config(workdir, port), indent=2))
        return ServerProcess("Orthanc", [binary, "--no-jobs", str(config)], log_path=workdir / "orthanc.log")

    process, port = start_on_free_port(make, lambda port: answers_echo(port, AET), pick_port=free_port)
    return DicomNode(name="orthanc", host=HOST, port=port, aet=AET, process=process)


@pytest.fixture(scope="session")
def orthanc_node(tmp_path_factory) -> Iterator[DicomNode]:
    """An empty Orthanc (called AE ``RVARCH``) for this test session."""
    node = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield node
    finally:
        node.process.stop()
