"""``s3_server``: moto's S3 server (``python -m moto.server``) as a real HTTPS endpoint on a free loopback port.

It runs in a process of its own, so the client under test talks to it over real sockets and TLS, as it
would to an on-premises object store: a self-signed certificate for 127.0.0.1 (the one the FTPS server
uses, made at session start) that clients trust through ``ca_file``. moto accepts any access key pair;
the fixture makes a random one anyway and hands it over the way a site would, in environment variables.

What moto does not do that a real store does (so what these tests leave unproven) is listed in
docs/testing.md.
"""
from __future__ import annotations

import secrets
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.servers.ftp import make_certificate
from tests.servers.ports import HOST, free_port
from tests.servers.process import REPO_ROOT, ServerProcess, start_on_free_port

REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str  # https://127.0.0.1:PORT
    region: str
    access_key: str
    secret_key: str
    ca_file: str
    process: ServerProcess

    def client(self) -> Any:
        """A plain boto3 client of the store (path-style), as another program (or an attacker) would use it."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, verify=self.ca_file,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def new_bucket(self, *, object_lock: bool = False) -> str:
        """A fresh bucket for one test (versioned, with Object Lock enabled, when ``object_lock``)."""
        name = f"pdas-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def url(self, bucket: str, prefix: str = "archive") -> str:
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}&region={self.region}"


def _answers_s3(port: int, ca_file: str) -> bool:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3", endpoint_url=f"https://{HOST}:{port}", region_name=REGION, aws_access_key_id="probe",
        aws_secret_access_key="probe", verify=ca_file,
        config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
    try:
        client.list_buckets()
        return True
    except Exception:  # refused, or TLS/HTTP not up yet
        return False
    finally:
        client.close()


def start_s3(workdir: Path) -> S3Server:
    try:
        import moto.server  # noqa: F401 - the test extra installs moto with its server
    except ImportError:
        pytest.fail("moto is not installed (pip install -e '.[test]'; `deploy/dev.sh setup` installs it)", pytrace=False)
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = make_certificate(workdir)

    def make(port: int) -> ServerProcess:
        argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port), "-c", str(cert), "-k", str(key)]
        return ServerProcess("moto s3 server", argv, log_path=workdir / "moto.log", cwd=REPO_ROOT)

    process, port = start_on_free_port(make, lambda port: _answers_s3(port, str(cert)), pick_port=free_port)
    return S3Server(endpoint=f"https://{HOST}:{port}", region=REGION, access_key=f"PDAS{secrets.token_hex(8).upper()}",
                    secret_key=secrets.token_urlsafe(30), ca_file=str(cert), process=process)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """moto's S3 over HTTPS: ``endpoint region access_key secret_key ca_file``, ``client()``,
    ``new_bucket(object_lock=False)``, ``url(bucket, prefix)``."""
    server = start_s3(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.process.stop()
