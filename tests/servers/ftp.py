"""``ftp_server`` (explicit FTPS) and ``ftp_server_plain``: a pyftpdlib server in a process of its own.

The server runs as ``python -m tests.servers.ftp ...`` so the client under test talks to a
separate process over real sockets, as it would to a storage array. For FTPS a self-signed
certificate for 127.0.0.1/localhost is made at session start; clients trust it through
``ca_file``. The password travels in the environment, not on the command line.
"""
from __future__ import annotations

import argparse
import datetime as dt
import ftplib
import ipaddress
import os
import secrets
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.ports import HOST, free_port, free_port_range
from tests.servers.process import REPO_ROOT, ServerProcess, start_on_free_port

PASSWORD_ENV = "PDAS_TEST_FTP_PASSWORD"
PASSIVE_PORTS = 16


def make_certificate(directory: Path, *, host: str = HOST) -> tuple[Path, Path]:
    """A self-signed certificate (usable as its own CA) and key for ``host`` and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PDAS test FTP server")])
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "ftp-cert.pem", directory / "ftp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class FtpServer:
    host: str
    port: int
    user: str
    password: str
    root: Path  # the account's home: "/" in FTP paths
    tls: bool
    ca_file: str | None  # the server certificate, which clients trust as the CA (FTPS only)
    passive_ports: range
    process: ServerProcess

    def url(self, path: str = "/") -> str:
        return f"{'ftps' if self.tls else 'ftp'}://{self.user}@{self.host}:{self.port}{path}"

    def new_dir(self, prefix: str = "t") -> str:
        """A fresh directory under the root for one test; returns its FTP path (``/t-1a2b...``)."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        (self.root / name).mkdir()
        return f"/{name}"


def _answers_banner(port: int) -> bool:
    try:
        with ftplib.FTP() as ftp:
            return ftp.connect(HOST, port, timeout=1).startswith("220")
    except (OSError, EOFError, ftplib.Error):
        return False


def start_ftp(workdir: Path, *, tls: bool = True, tls_control_required: bool = True,
              tls_data_required: bool = True) -> FtpServer:
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "home"
    root.mkdir(exist_ok=True)
    password = secrets.token_urlsafe(12)
    cert = key = None
    if tls:
        cert, key = make_certificate(workdir)
    passive = free_port_range(PASSIVE_PORTS)
    env = {**os.environ, PASSWORD_ENV: password}

    def make(port: int) -> ServerProcess:
        argv = [sys.executable, "-m", "tests.servers.ftp", "--port", str(port), "--home", str(root),
                "--user", "pdas", "--passive-ports", f"{passive.start}-{passive.stop - 1}"]
        if tls:
            argv += ["--certfile", str(cert), "--keyfile", str(key)]
            argv += ["--tls-control-required"] if tls_control_required else []
            argv += ["--tls-data-required"] if tls_data_required else []
        return ServerProcess("ftp server", argv, log_path=workdir / "ftp.log", env=env, cwd=REPO_ROOT)

    process, port = start_on_free_port(make, _answers_banner, pick_port=free_port)
    return FtpServer(host=HOST, port=port, user="pdas", password=password, root=root, tls=tls,
                     ca_file=str(cert) if cert else None, passive_ports=passive, process=process)


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory) -> Iterator[FtpServer]:
    """Explicit FTPS (AUTH TLS), TLS required on control and data channels."""
    server = start_ftp(tmp_path_factory.mktemp("ftps"))
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="session")
def ftp_server_plain(tmp_path_factory) -> Iterator[FtpServer]:
    """Plain FTP, no TLS (for the allow_plain_ftp path)."""
    server = start_ftp(tmp_path_factory.mktemp("ftp"), tls=False)
    try:
        yield server
    finally:
        server.process.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.ftp",
                                     description=f"A test FTP/FTPS server; the password comes from ${PASSWORD_ENV}.")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--passive-ports", required=True, help="FIRST-LAST")
    parser.add_argument("--certfile", help="PEM certificate: turns on explicit FTPS")
    parser.add_argument("--keyfile")
    parser.add_argument("--tls-control-required", action="store_true")
    parser.add_argument("--tls-data-required", action="store_true")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        parser.error(f"${PASSWORD_ENV} is not set")

    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, password, args.home, perm="elradfmwMT")
    if args.certfile:
        from pyftpdlib.handlers import TLS_FTPHandler

        class Handler(TLS_FTPHandler):
            certfile = args.certfile
            keyfile = args.keyfile
            tls_control_required = args.tls_control_required
            tls_data_required = args.tls_data_required
    else:
        class Handler(FTPHandler):
            pass
    first, _, last = args.passive_ports.partition("-")
    Handler.authorizer = authorizer
    Handler.passive_ports = list(range(int(first), int(last) + 1))
    Handler.timeout = 120
    Handler.encoding = "utf8"
    server = FTPServer((args.host, args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
