"""MLLP framing and the threading server (connectors.mllp), over loopback with an echo handler: no Django."""
from __future__ import annotations

import ipaddress
import socket
import threading
import time

import pytest

from connectors.mllp import END, START, FrameError, FrameReader, MllpServer, frame


def test_frames_split_over_reads_and_several_in_one_read():
    reader = FrameReader(max_frame=100)
    stream = frame(b"MSH|1") + b"\r\n" + frame(b"MSH|2") + frame(b"MSH|3")
    got = []
    for byte in range(len(stream)):  # one byte per read: <FS> and <CR> arrive apart
        got += reader.feed(stream[byte:byte + 1])
    assert got == [b"MSH|1", b"MSH|2", b"MSH|3"] and not reader.pending
    assert reader.feed(stream) == [b"MSH|1", b"MSH|2", b"MSH|3"]
    assert reader.feed(START + b"MSH|4\x1c") == [] and reader.pending
    assert reader.feed(b"\r") == [b"MSH|4"]


def test_a_frame_of_exactly_the_limit_passes_and_one_byte_more_does_not():
    assert FrameReader(max_frame=10).feed(frame(b"x" * 10)) == [b"x" * 10]
    reader = FrameReader(max_frame=10)
    assert reader.feed(START + b"x" * 10 + b"\x1c") == []  # that <FS> may be the frame's end: not too large yet
    with pytest.raises(FrameError, match="larger than 10 bytes"):
        reader.feed(b"x")  # it was not
    with pytest.raises(FrameError, match="larger than 10 bytes"):
        FrameReader(max_frame=10).feed(frame(b"x" * 11))


@pytest.mark.parametrize("stream, error", [
    (b"MSH|no framing\r", "bytes outside an MLLP frame (expected <VT> 0x0B, got 0x4D)"),
    (START + b"MSH|1" + START + b"MSH|2" + END, "<VT> 0x0B inside an MLLP frame"),
])
def test_broken_framing_is_an_error(stream, error):
    with pytest.raises(FrameError, match=error.replace("(", r"\(").replace(")", r"\)")):
        FrameReader().feed(stream)


@pytest.fixture
def echo_server():
    """An MLLP server on a free loopback port answering ``ACK:<message>``; torn down after the test."""
    yield from serve(timeout=10)


@pytest.fixture
def impatient_server():
    """The same, with a timeout of half a second."""
    yield from serve(timeout=0.5)


def serve(*, timeout: float):
    ended = threading.Event()

    def handle(message: bytes) -> bytes:
        if message == b"boom":
            raise RuntimeError("a bug in the handler")
        return b"ACK:" + message

    server = MllpServer(("127.0.0.1", 0), handle=handle, reject=lambda reason: b"NAK:" + reason.encode(),
                        on_connection_end=ended.set, max_frame=64, timeout=timeout, max_connections=2)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.ended = ended
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


class Conn:
    """A client connection that reads whole frames, keeping what came after the one it returns."""

    def __init__(self, server):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.reader = FrameReader()
        self.waiting: list[bytes] = []

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def close(self) -> None:
        self.sock.close()


connect = Conn


def read_frame(conn: Conn) -> bytes:
    while not conn.waiting:
        data = conn.sock.recv(4096)
        if not data:
            raise ConnectionError("closed before a whole frame")
        conn.waiting += conn.reader.feed(data)
    return conn.waiting.pop(0)


def closed(sock) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_several_messages_on_one_connection_and_split_frames(echo_server):
    with connect(echo_server) as sock:
        sock.sendall(frame(b"one") + frame(b"two"))
        assert read_frame(sock) == b"ACK:one"
        assert read_frame(sock) == b"ACK:two"
        sock.sendall(START + b"thr")
        time.sleep(0.05)
        sock.sendall(b"ee\x1c")
        time.sleep(0.05)
        sock.sendall(b"\r")
        assert read_frame(sock) == b"ACK:three"


def test_an_oversized_frame_is_rejected_and_the_connection_closed(echo_server):
    with connect(echo_server) as sock:
        sock.sendall(START + b"x" * 200)
        assert read_frame(sock) == b"NAK:an MLLP frame larger than 64 bytes"
        assert closed(sock)
    with connect(echo_server) as sock:  # the server goes on
        sock.sendall(frame(b"after"))
        assert read_frame(sock) == b"ACK:after"


def test_a_stalled_client_is_disconnected(impatient_server):
    with connect(impatient_server) as sock:
        sock.sendall(START + b"half a message")
        started = time.monotonic()
        assert closed(sock)
        assert 0.4 < time.monotonic() - started < 5
    assert impatient_server.ended.wait(2)  # the connection's end hook ran


def test_a_slow_drip_cannot_keep_a_frame_open_past_the_timeout(impatient_server):
    with connect(impatient_server) as sock:
        sock.sendall(START)
        started = time.monotonic()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                time.sleep(0.1)  # each byte within the timeout, the frame not
                sock.sendall(b"x")
        assert time.monotonic() - started < 8


def test_a_failing_handler_drops_that_client_only(echo_server):
    with connect(echo_server) as sock:
        sock.sendall(frame(b"boom"))
        assert closed(sock)
    with connect(echo_server) as sock:
        sock.sendall(frame(b"fine"))
        assert read_frame(sock) == b"ACK:fine"


def test_concurrent_clients_and_the_connection_limit(echo_server):
    first, second = connect(echo_server), connect(echo_server)
    try:
        first.sendall(frame(b"1"))
        second.sendall(frame(b"2"))
        assert read_frame(second) == b"ACK:2" and read_frame(first) == b"ACK:1"
        with connect(echo_server) as third:  # over max_connections=2: closed at once
            assert closed(third)
    finally:
        first.close()
        second.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the slots come back once the two have left
        with connect(echo_server) as again:
            again.sendall(frame(b"3"))
            try:
                if read_frame(again) == b"ACK:3":
                    break
            except (ConnectionError, OSError):
                time.sleep(0.05)
    else:
        pytest.fail("no slot came back after the clients left")


def test_clients_from_other_addresses_are_closed_at_once():
    def serve_allowing(network: str) -> MllpServer:
        server = MllpServer(("127.0.0.1", 0), handle=lambda message: b"ACK:" + message, reject=lambda r: b"NAK",
                            allowed=[ipaddress.ip_network(network)])
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return server

    for network, served in (("10.0.0.0/8", False), ("127.0.0.0/8", True), ("::1/128", False)):
        server = serve_allowing(network)
        try:
            with connect(server) as sock:
                sock.sendall(frame(b"hello"))
                if served:
                    assert read_frame(sock) == b"ACK:hello"
                else:
                    assert closed(sock)
        finally:
            server.shutdown()
            server.server_close()
