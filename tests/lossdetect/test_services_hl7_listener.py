"""The HL7 listener over loopback (lossdetect.services.hl7_listener): real MLLP clients against the running
server, the aliases and audit rows in the database. The server runs in a thread of its own: the tests use
committed rows (``transaction=True``)."""
from __future__ import annotations

import logging
import socket
import threading
import time

import hl7
import pytest
from hl7.client import MLLPClient

from audit.models import AuditEvent
from connectors.mllp import FrameReader, frame
from lossdetect.models import MrnAlias
from lossdetect.services.hl7_listener import listener
from tests.factories import InstitutionFactory
from tests.lossdetect.test_services_hl7_messages import message, msh
from tests.servers.ports import HOST, free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def institution():
    return InstitutionFactory(code="PUMCH")


def start(institution, **kwargs):
    """The institution's listener serving on a free loopback port, in a thread; (server, thread)."""
    for _attempt in range(5):
        try:
            server = listener(institution=institution, host=HOST, port=free_port(), **kwargs)
            break
        except OSError:  # taken between the check and the bind by another test session: try another
            continue
    else:
        pytest.fail("no free port after 5 tries")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def running(institution):
    servers = []

    def run(**kwargs):
        server, thread = start(institution, **kwargs)
        servers.append((server, thread))
        return server

    yield run
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Client:
    """A raw MLLP client: sends bytes as given (whole frames, pieces), reads whole framed ACKs."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.reader = FrameReader()
        self.waiting: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ack(self, encoding: str = "utf-8") -> hl7.Message:
        while not self.waiting:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the listener closed the connection")
            self.waiting += self.reader.feed(data)
        return hl7.parse(self.waiting.pop(0).decode(encoding))

    def exchange(self, data: bytes, encoding: str = "utf-8") -> hl7.Message:
        self.send(frame(data))
        return self.ack(encoding)

    def close(self) -> None:
        self.sock.close()


def merge(old: str, new: str, *, event: str = "A40", control: str, **kwargs) -> bytes:
    return message(msh(event, control=control), f"EVN|{event}", f"PID|1||{new}^^^HIS^MR||WANG^WU",
                   f"MRG|{old}^^^HIS^MR", **kwargs)


def answer(reply: hl7.Message) -> tuple[str, str, str]:
    return reply["MSA.F1"], reply["MSA.F2"], reply["MSA.F3"]


def test_several_messages_on_one_connection_split_frames_and_bad_ones(institution, running, caplog):
    caplog.set_level(logging.INFO, logger="lossdetect.hl7")
    server = running()
    client = Client(server.port)
    try:
        assert answer(client.exchange(merge("000100", "000200", control="M1"))) == (
            "AA", "M1", "MRN alias 000100 -> 000200 recorded")

        a47 = frame(merge("R1", "R2", event="A47", control="M2"))
        for piece in (a47[:1], a47[1:40], a47[40:-1], a47[-1:]):  # <FS> and <CR> apart too
            client.send(piece)
            time.sleep(0.02)
        assert answer(client.ack()) == ("AA", "M2", "MRN alias R1 -> R2 recorded")

        two_at_once = frame(merge("000300", "000400", control="M3")) + frame(
            message(msh("A08", control="M4"), "EVN|A08", "PID|1||000400^^^HIS^MR||WANG^WU"))
        client.send(two_at_once)
        assert answer(client.ack()) == ("AA", "M3", "MRN alias 000300 -> 000400 recorded")
        assert answer(client.ack()) == ("AA", "M4", "no prior identifier (MRG-1): nothing to record")

        malformed = client.exchange(message(msh(control="M5"), "PID|1||", "MRG|000500"))
        assert answer(malformed) == ("AE", "M5", "PID-3 (patient identifier list) is empty")
        assert malformed["ERR.F2"] == "PID" and malformed["ERR.F3"] == "101"

        other = client.exchange(message(msh("R01", control="M6", message_type="ORU"), "PID|1||000200"))
        assert answer(other)[:2] == ("AR", "M6") and other["ERR.F3"] == "200"

        cycle = client.exchange(merge("000200", "000100", event="A47", control="M7"))
        assert answer(cycle) == ("AE", "M7", "'000200' -> '000100' would make a cycle (000200 -> 000100 -> 000200)")

        again = client.exchange(merge("000100", "000200", control="M8"))  # the engine resends: nothing new
        assert answer(again) == ("AA", "M8", "MRN alias 000100 -> 000200 already recorded")
    finally:
        client.close()

    aliases = {(a.old_mrn, a.mrn): a for a in MrnAlias.objects.filter(institution=institution)}
    assert set(aliases) == {("000100", "000200"), ("R1", "R2"), ("000300", "000400")}
    first = aliases["000100", "000200"]
    assert (first.source, first.recorded_by, first.reason) == (
        "hl7", "HIS^PUMCH (HL7)", "HL7 ADT^A40 message M1 from HIS^PUMCH")
    changes = AuditEvent.objects.filter(event="mrnalias.change").order_by("id")
    assert [(e.mrns, e.actor, e.institution, e.detail["source"], e.detail["hl7"]["control_id"]) for e in changes] == [
        (["000100", "000200"], "HIS^PUMCH (HL7)", "PUMCH", "hl7", "M1"),
        (["R1", "R2"], "HIS^PUMCH (HL7)", "PUMCH", "hl7", "M2"),
        (["000300", "000400"], "HIS^PUMCH (HL7)", "PUMCH", "hl7", "M3")]
    assert changes[0].detail["hl7"] == {"control_id": "M1", "message_type": "ADT^A40", "sender": "HIS^PUMCH"}

    lines = [r.getMessage() for r in caplog.records if r.name == "lossdetect.hl7"]
    assert lines[0] == "HL7 PUMCH M1 ADT^A40 from HIS^PUMCH: AA MRN alias 000100 -> 000200 recorded"
    assert [line.split()[2] for line in lines] == ["M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8"]
    assert not any("WANG" in line for line in lines)  # no patient names in the log


def test_a_merge_of_several_patients_is_recorded_whole_or_not_at_all(institution, running):
    MrnAlias.objects.create(institution=institution, old_mrn="000900", mrn="000901", source="admin")
    server = running()
    client = Client(server.port)
    try:
        data = message(msh(control="X1"), "EVN|A40", "PID|1||000200", "MRG|000100",
                       "PID|2||000902", "MRG|000900")  # 000900 already goes by 000901
        reply = client.exchange(data)
        assert reply["MSA.F1"] == "AE" and reply["MSA.F3"].startswith("'000900' is already an alias of '000901'")
    finally:
        client.close()
    assert not MrnAlias.objects.filter(old_mrn="000100").exists()
    assert not AuditEvent.objects.filter(event="mrnalias.change").exists()


def test_gb18030_and_utf8_messages_with_chinese_names_and_the_librarys_client(institution, running):
    server = running()
    gb = message(msh(control="G1", charset="GB 18030-2000", sender="信息科", facility="北京协和医院"),
                 "EVN|A40", "PID|1||000200^^^^MR||张^三丰", "MRG|000100^^^^MR", encoding="gb18030")
    with MLLPClient(HOST, server.port, encoding="gb18030") as client:  # python-hl7's own MLLP client
        reply = hl7.parse(client.send_message(gb).strip(b"\x0b\x1c\r").decode("gb18030"))
    assert answer(reply) == ("AA", "G1", "MRN alias 000100 -> 000200 recorded")
    assert (reply["MSH.F5"], reply["MSH.F6"], reply["MSH.F18"]) == ("信息科", "北京协和医院", "GB 18030-2000")

    utf8 = message(msh(control="U1", sender="信息科"), "EVN|A47", "PID|1||000400^^^^MR||李^四", "MRG|000300^^^^MR")
    client = Client(server.port)
    try:
        reply = client.exchange(utf8)
    finally:
        client.close()
    assert answer(reply) == ("AA", "U1", "MRN alias 000300 -> 000400 recorded") and reply["MSH.F5"] == "信息科"
    recorded = MrnAlias.objects.get(old_mrn="000100")
    assert recorded.recorded_by == "信息科^北京协和医院 (HL7)"


def test_concurrent_clients(institution, running):
    server = running()
    clients = [Client(server.port) for _ in range(3)]
    try:
        for number, client in enumerate(clients):  # all three connected before any answer
            client.send(frame(merge(f"00010{number}", f"00020{number}", control=f"C{number}")))
        assert [answer(client.ack())[0] for client in reversed(clients)] == ["AA", "AA", "AA"]
    finally:
        for client in clients:
            client.close()
    assert MrnAlias.objects.filter(institution=institution, source="hl7").count() == 3


def test_an_oversized_frame_is_rejected_and_the_listener_goes_on(institution, running):
    server = running(max_frame=2048)
    client = Client(server.port)
    try:
        client.send(b"\x0b" + b"MSH|" + b"x" * 4096)
        reply = client.ack()
        assert answer(reply) == ("AR", "", "an MLLP frame larger than 2048 bytes")
        with pytest.raises((ConnectionError, OSError)):
            client.ack()  # closed
    finally:
        client.close()
    client = Client(server.port)
    try:
        assert client.exchange(merge("000100", "000200", control="N1"))["MSA.F1"] == "AA"
    finally:
        client.close()


def test_a_client_that_stalls_is_disconnected_and_others_are_served(institution, running):
    server = running(timeout=0.5)
    stalled = Client(server.port)
    try:
        stalled.send(b"\x0bMSH|^~\\&|HIS")
        fresh = Client(server.port)
        try:
            assert fresh.exchange(merge("000100", "000200", control="S1"))["MSA.F1"] == "AA"
        finally:
            fresh.close()
        with pytest.raises((ConnectionError, OSError)):
            stalled.ack()
    finally:
        stalled.close()


def test_a_database_that_cannot_be_written_or_a_bug_answers_ar_207_and_records_nothing(institution, monkeypatch,
                                                                                        caplog):
    from django.db import OperationalError

    from lossdetect.services import hl7_listener
    from lossdetect.services.hl7_messages import Options

    def locked(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(hl7_listener, "add_mrn_alias", locked)
    reply = hl7.parse(hl7_listener.receive(merge("000100", "000200", control="D1"), institution=institution,
                                           options=Options()).decode())
    assert answer(reply) == ("AR", "D1", "the database cannot be written now (database is locked); resend later")
    assert reply["ERR.F3"] == "207"

    def bug(data, options):
        raise KeyError("oops")

    monkeypatch.setattr(hl7_listener, "read_message", bug)
    with caplog.at_level(logging.ERROR, logger="lossdetect.hl7"):
        reply = hl7.parse(hl7_listener.receive(b"MSH|...", institution=institution, options=Options()).decode())
    assert answer(reply) == ("AR", "", "application internal error (KeyError); resend later")
    assert "handling failed" in caplog.text
    assert not MrnAlias.objects.exists()
