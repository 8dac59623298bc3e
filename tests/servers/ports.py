"""Free loopback ports for the test servers.

A port found free here can be taken by someone else before our server binds it (other test
sessions run on the same machine), so the server modules retry start-up on a new port when
the server reports the address is in use (``process.start_on_free_port``).
"""
from __future__ import annotations

import random
import socket

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port_range(count: int, *, host: str = HOST, low: int = 30000, high: int = 60000,
                    attempts: int = 50) -> range:
    """``count`` consecutive free ports (an FTP passive range), tried at random bases in [low, high)."""
    for _ in range(attempts):
        base = random.randrange(low, high - count)
        ports = range(base, base + count)
        if all(_bindable(port, host) for port in ports):
            return ports
    raise RuntimeError(f"no {count} consecutive free ports between {low} and {high} after {attempts} tries")


def accepts_connections(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
