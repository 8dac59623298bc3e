"""``redis_server``: a private redis-server on a free loopback port, nothing saved to disk."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import redis as redis_client

from tests.servers.ports import HOST, free_port
from tests.servers.process import ServerProcess, require_binary, start_on_free_port


def _answers_ping(port: int) -> bool:
    client = redis_client.Redis(host=HOST, port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis_client.RedisError:
        return False
    finally:
        client.close()


def start_redis(workdir: Path) -> tuple[ServerProcess, str]:
    """Start redis-server in ``workdir``; return the process and its ``redis://`` URL."""
    binary = require_binary("redis-server", "/usr/bin/redis-server", package="redis-server")
    workdir.mkdir(parents=True, exist_ok=True)

    def make(port: int) -> ServerProcess:
        argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(workdir), "--logfile", "", "--databases", "4"]
        return ServerProcess("redis-server", argv, log_path=workdir / "redis.log")

    server, port = start_on_free_port(make, _answers_ping, pick_port=free_port)
    return server, f"redis://{HOST}:{port}/0"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    """The URL (``redis://127.0.0.1:PORT/0``) of a redis-server running for this test session."""
    server, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        server.stop()
