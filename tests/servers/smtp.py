"""``smtp_server``: an aiosmtpd SMTP server in a process of its own, keeping every message it receives.

PDAS mails through Django's SMTP backend to this server over a real socket (the ``smtp_mail`` fixture
points the settings at it). Each message is written to ``<spool>/<n>.eml`` with its envelope
recipients in a first ``X-Envelope-To`` line, so a test reads what a mail server would have delivered.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import smtplib
import sys
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.ports import HOST, free_port
from tests.servers.process import REPO_ROOT, ServerProcess, start_on_free_port


@dataclass
class SmtpServer:
    host: str
    port: int
    spool: Path
    process: ServerProcess

    def new_address(self) -> str:
        """A recipient no other test uses: its messages are this test's."""
        return f"t-{uuid.uuid4().hex[:10]}@pdas.test"

    def messages_to(self, address: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.spool.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
            envelope, _, raw = path.read_bytes().partition(b"\n")
            if address.encode() in envelope.split(b" ")[1:]:
                found.append(email.message_from_bytes(raw, policy=email.policy.default))
        return found


def _answers(port: int) -> bool:
    try:
        with smtplib.SMTP(HOST, port, timeout=1) as client:
            return client.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory) -> Iterator[SmtpServer]:
    workdir = tmp_path_factory.mktemp("smtp")
    spool = workdir / "spool"
    spool.mkdir()

    def make(port: int) -> ServerProcess:
        return ServerProcess("smtp server", [sys.executable, "-m", "tests.servers.smtp", "--port", str(port),
                                             "--spool", str(spool)], log_path=workdir / "smtp.log", cwd=REPO_ROOT)

    process, port = start_on_free_port(make, _answers, pick_port=free_port)
    try:
        yield SmtpServer(host=HOST, port=port, spool=spool, process=process)
    finally:
        process.stop()


@pytest.fixture
def smtp_mail(smtp_server, settings) -> SmtpServer:
    """Django's real SMTP backend, sending to ``smtp_server``."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    return smtp_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.smtp", description="A test SMTP server.")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", required=True, type=Path)
    args = parser.parse_args(argv)

    import asyncio
    import itertools

    from aiosmtpd.controller import Controller

    counter = itertools.count(1)

    class Keep:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            path = args.spool / f"{next(counter):06d}.eml"
            head = ("X-Envelope-To " + " ".join(envelope.rcpt_tos) + "\n").encode()
            content = envelope.original_content or envelope.content
            partial = path.with_suffix(".part")
            partial.write_bytes(head + (content if isinstance(content, bytes) else content.encode()))
            partial.rename(path)
            return "250 OK"

    controller = Controller(Keep(), hostname=args.host, port=args.port)
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
