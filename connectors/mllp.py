"""MLLP (the HL7 v2 Minimal Lower Layer Protocol) over TCP: framing and a threading server.

A frame is ``<VT> message <FS><CR>`` (0x0B, then the message's bytes, then 0x1C 0x0D); the receiver
answers each frame with one framed reply (an HL7 ACK) before it reads the next. The bytes are left as
they are: the message's character set (HL7 MSH-18) is the caller's to read, and neither UTF-8 nor
GB18030 ever uses 0x0B, 0x1C or 0x0D inside a multi-byte character, so the frame ends are found
before any decoding.

The server takes several frames per connection, frames split over several reads and several frames
in one read. It bounds what a client can cost: a frame larger than ``max_frame`` bytes, or bytes
outside a frame, get one reply made by ``reject`` and the connection is closed; a client silent for
``timeout`` seconds, or taking longer than that to finish a frame it started, is disconnected; beyond
``max_connections`` at once, new connections are closed at once; with ``allowed`` networks, a client
from any other address is closed at once too. Nothing a client sends stops the
server: an exception of ``handle`` closes that connection only, and is logged.

Why not ``hl7.mllp`` (python-hl7's asyncio streams): it decodes every message with one encoding fixed
when the server starts, where each HL7 message names its own (MSH-18), and this server is small enough
to bound sizes and times in plain sockets.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import threading
import time
from typing import Callable, Collection

log = logging.getLogger(__name__)

START = b"\x0b"  # <VT>
END = b"\x1c\x0d"  # <FS><CR>
MAX_FRAME = 1 << 20  # bytes of one message: an ADT message is a few kilobytes
TIMEOUT = 60.0  # seconds a client may stay silent, or take to finish a frame
MAX_CONNECTIONS = 16
_READ = 65536
_WHITESPACE = b" \t\r\n"  # tolerated between frames (some senders end a frame with an extra newline)


class FrameError(Exception):
    """The client broke the framing (a frame too large, bytes outside a frame): one line saying how."""


def frame(message: bytes) -> bytes:
    """``message`` framed for MLLP."""
    return START + message + END


class FrameReader:
    """The frames in a stream of bytes fed to it in pieces of any size (``feed`` returns the frames it completed)."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        self._data = bytearray()  # the unfinished frame's bytes after its <VT>, or bytes before the next <VT>
        self._inside = False
        self._searched = 0  # bytes of ``_data`` known to hold no <FS><CR>
        self.started_at: float | None = None  # time.monotonic() when the unfinished frame began

    @property
    def pending(self) -> bool:
        """A frame has begun and not ended."""
        return self._inside

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data``; ``FrameError`` when the client broke the framing."""
        self._data += data
        frames: list[bytes] = []
        while True:
            if not self._inside:
                skipped = len(self._data) - len(self._data.lstrip(_WHITESPACE))
                del self._data[:skipped]
                if not self._data:
                    return frames
                if self._data[0] != START[0]:
                    raise FrameError(f"bytes outside an MLLP frame (expected <VT> 0x0B, got 0x{self._data[0]:02X})")
                del self._data[:1]
                self._inside, self._searched, self.started_at = True, 0, time.monotonic()
            end = self._data.find(END, max(self._searched - 1, 0))
            size = len(self._data) if end < 0 else end
            if self._data.find(START, self._searched, size) >= 0:
                raise FrameError("<VT> 0x0B inside an MLLP frame (a frame began before the last one ended)")
            # One byte of slack while unfinished: a trailing <FS> waiting for its <CR> is not content.
            if size > self.max_frame + (1 if end < 0 else 0):
                raise FrameError(f"an MLLP frame larger than {self.max_frame} bytes")
            if end < 0:
                self._searched = size
                return frames
            frames.append(bytes(self._data[:end]))
            del self._data[:end + len(END)]
            self._inside, self.started_at = False, None


Handler = Callable[[bytes], bytes]  # a message's bytes -> the reply's bytes (unframed)
Reject = Callable[[str], bytes]  # why the client's bytes cannot be taken -> the reply's bytes (unframed)


class _Connection(socketserver.BaseRequestHandler):
    server: "MllpServer"

    def handle(self) -> None:
        server, sock = self.server, self.request
        peer = "%s:%s" % self.client_address[:2]
        reader = FrameReader(server.max_frame)
        limit = server.client_timeout
        try:
            while True:
                wait = limit
                if reader.pending and reader.started_at is not None:  # the whole frame within the limit
                    wait = reader.started_at + limit - time.monotonic()
                try:
                    if wait <= 0:
                        raise socket.timeout
                    sock.settimeout(wait)
                    data = sock.recv(_READ)
                except socket.timeout:
                    if reader.pending:
                        log.warning("MLLP %s: a frame unfinished after %g s; disconnected", peer, limit)
                    else:
                        log.info("MLLP %s: silent for %g s; disconnected", peer, limit)
                    return
                if not data:
                    if reader.pending:
                        log.warning("MLLP %s: closed the connection inside a frame", peer)
                    return
                sock.settimeout(limit)  # for the replies: what was left of a frame's time may be little
                try:
                    frames = reader.feed(data)
                except FrameError as exc:
                    log.warning("MLLP %s: %s; rejected and disconnected", peer, exc)
                    sock.sendall(frame(server.reject(str(exc))))
                    return
                for message in frames:
                    sock.sendall(frame(server.handle_message(message)))
        except OSError as exc:  # reset by the peer, a send that timed out
            log.info("MLLP %s: connection lost (%s)", peer, exc)
        except Exception:  # a bug in a handler: this client is dropped, the server goes on
            log.exception("MLLP %s: handling failed; disconnected", peer)
        finally:
            if server.on_connection_end is not None:
                server.on_connection_end()


class MllpServer(socketserver.ThreadingTCPServer):
    """A threading MLLP server on ``(host, port)`` (port 0: any free one, see ``port``).

    ``handle`` answers one message and should not raise; ``reject`` answers bytes that are no frame;
    ``on_connection_end`` runs in the connection's thread when it ends (to close what that thread opened).
    ``allowed``: the networks clients may connect from (None: any). Run it with ``serve_forever()``;
    ``shutdown()`` from another thread stops it.
    """

    daemon_threads = True  # a client that never leaves does not keep the process from stopping
    allow_reuse_address = True  # restarting the listener does not wait for TIME_WAIT to pass
    block_on_close = False

    def __init__(self, address: tuple[str, int], *, handle: Handler, reject: Reject,
                 on_connection_end: Callable[[], None] | None = None, max_frame: int = MAX_FRAME,
                 timeout: float = TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 allowed: Collection[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None):
        self.handle_message, self.reject, self.on_connection_end = handle, reject, on_connection_end
        self.allowed = list(allowed) if allowed is not None else None
        self.max_frame, self.client_timeout = max_frame, timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self.max_connections = max_connections
        super().__init__(address, _Connection)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def verify_request(self, request, client_address) -> bool:
        if self.allowed is None:
            return True
        address = ipaddress.ip_address(client_address[0])
        if any(address in network for network in self.allowed if network.version == address.version):
            return True
        log.warning("MLLP %s:%s: not an allowed address; closed", *client_address[:2])
        return False

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("MLLP %s:%s: more than %d connections at once; closed", *client_address[:2],
                        self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        log.exception("MLLP %s:%s: unexpected error", *client_address[:2])
