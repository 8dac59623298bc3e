"""``manage.py hl7_listener``: the real command in a process of its own on a free port, stopped by SIGTERM;
and the one-line errors of a bad start (exit 2)."""
from __future__ import annotations

import os
import socket
import sys

import hl7
import pytest

from connectors.mllp import FrameReader, frame
from lossdetect.models import MrnAlias
from tests.commands import run_command
from tests.factories import InstitutionFactory
from tests.lossdetect.test_services_hl7_messages import message, msh
from tests.servers.celery_worker import worker_database_url
from tests.servers.ports import HOST, accepts_connections, free_port
from tests.servers.process import REPO_ROOT, ServerProcess, start_on_free_port


def exchange(port: int, data: bytes) -> hl7.Message:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(frame(data))
        reader = FrameReader()
        while not (frames := reader.feed(sock.recv(65536))):
            pass
    return hl7.parse(frames[0].decode())


@pytest.mark.django_db(transaction=True)
def test_the_command_records_aliases_and_stops_on_sigterm(tmp_path):
    InstitutionFactory(code="PUMCH")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pdas.settings", "DATABASE_URL": worker_database_url(),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}

    def make(port: int) -> ServerProcess:
        return ServerProcess("hl7_listener", [sys.executable, "manage.py", "hl7_listener", "--institution", "PUMCH",
                                              "--host", HOST, "--port", str(port), "--allow-from", "127.0.0.0/8"],
                             log_path=tmp_path / "hl7_listener.log", env=env, cwd=REPO_ROOT)

    server, port = start_on_free_port(make, accepts_connections, pick_port=free_port)
    try:
        reply = exchange(port, message(msh(control="CMD1"), "EVN|A40", "PID|1||000200^^^^MR||ZHANG^SAN",
                                       "MRG|000100^^^^MR"))
        assert (reply["MSA.F1"], reply["MSA.F2"]) == ("AA", "CMD1")
    finally:
        server.stop()
    assert server.popen is not None and server.popen.returncode == 0, server.log_tail()
    log = server.log_path.read_text(encoding="utf-8")
    assert f"HL7 listener of PUMCH on {HOST}:{port} (MLLP; types MR)" in log
    assert "HL7 PUMCH CMD1 ADT^A40 from HIS^PUMCH: AA MRN alias 000100 -> 000200 recorded" in log
    assert "HL7 listener stopped" in log and "Traceback" not in log and "ZHANG" not in log
    assert MrnAlias.objects.get(old_mrn="000100").source == "hl7"


@pytest.mark.django_db
def test_an_unknown_institution_or_a_port_in_use_is_one_line_and_exit_2():
    code, _out, err = run_command("hl7_listener", "--institution", "NOPE")
    assert (code, err) == (2, "--institution: no institution with code 'NOPE'")
    InstitutionFactory(code="PUMCH")
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _out, err = run_command("hl7_listener", "--institution", "PUMCH", "--host", HOST, "--port", str(port))
    assert code == 2 and err == f"cannot listen on {HOST}:{port} (Address already in use)"
    code, _out, err = run_command("hl7_listener", "--institution", "PUMCH", "--port", "70000")
    assert (code, err) == (2, "--port: 70000 is not a TCP port (0 to 65535)")
    code, _out, err = run_command("hl7_listener", "--institution", "PUMCH", "--allow-from", "10.1.2.300")
    assert (code, err) == (2, "--allow-from: '10.1.2.300' does not appear to be an IPv4 or IPv6 network")
