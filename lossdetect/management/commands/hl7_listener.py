"""``manage.py hl7_listener --institution CODE [--host 127.0.0.1] [--port 2575]``: receive HL7 v2 ADT
messages (A40 merge, A47 identifier change, A08 with a prior identifier) over MLLP and record their
MRN aliases for one institution (docs/loss-detection.md, "HL7 v2 messages").

Runs until Ctrl-C or SIGTERM (exit 0). Exit 2: the institution is unknown or the address cannot be
bound. Each message is logged on one line (``lossdetect.hl7``).
"""
from __future__ import annotations

import ipaddress
import signal

from django.core.management.base import CommandError

from connectors.mllp import MAX_CONNECTIONS, MAX_FRAME, TIMEOUT
from core.commands import PdasCommand
from lossdetect.services.hl7_listener import listener
from lossdetect.services.hl7_messages import Options
from sites.commands import institution_option


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise ValueError(text)
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its error: "invalid int value"
    return parse


class Command(PdasCommand):
    help = "Receive HL7 v2 ADT messages (A40, A47, A08) over MLLP and record their MRN aliases for one institution."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code: the MRNs of the messages are its")
        parser.add_argument("--host", default="127.0.0.1",
                            help="Address to listen on (default 127.0.0.1; the interface engine's side: this "
                                 "server's address, or 0.0.0.0)")
        parser.add_argument("--port", type=int, default=2575, help="TCP port (default 2575; 0: any free port)")
        parser.add_argument("--identifier-type", action="append", dest="identifier_types", metavar="CODE",
                            help="CX.5 identifier type of the MRN in PID-3 and MRG-1 (default MR; repeat for more)")
        parser.add_argument("--receiving-application", default="",
                            help="MSH-5 the messages must name (default: any)")
        parser.add_argument("--receiving-facility", default="", help="MSH-6 the messages must name (default: any)")
        parser.add_argument("--max-frame", type=_positive(int), default=MAX_FRAME,
                            help=f"Largest message in bytes (default {MAX_FRAME})")
        parser.add_argument("--timeout", type=_positive(float), default=TIMEOUT,
                            help=f"Seconds a client may stay silent or take over one message (default {TIMEOUT:.0f})")
        parser.add_argument("--max-connections", type=_positive(int), default=MAX_CONNECTIONS,
                            help=f"Clients at once (default {MAX_CONNECTIONS})")
        parser.add_argument("--allow-from", action="append", dest="allow_from", metavar="ADDRESS[/BITS]",
                            help="Take connections from this address or network only (the interface engine's); "
                                 "repeat for more (default: any)")

    def handle(self, *args, institution: str, host: str, port: int, identifier_types: list[str] | None,
               receiving_application: str, receiving_facility: str, max_frame: int, timeout: float,
               max_connections: int, allow_from: list[str] | None, **options):
        inst = institution_option(institution)
        if not 0 <= port <= 65535:
            raise CommandError(f"--port: {port} is not a TCP port (0 to 65535)", returncode=2)
        types = frozenset(t.strip().upper() for t in identifier_types or ["MR"] if t.strip())
        if not types:
            raise CommandError("--identifier-type: give a type code such as MR", returncode=2)
        allowed = None
        if allow_from:
            try:
                allowed = [ipaddress.ip_network(value.strip(), strict=False) for value in allow_from]
            except ValueError as exc:
                raise CommandError(f"--allow-from: {exc}", returncode=2) from None
        read = Options(identifier_types=types, receiving_application=receiving_application.strip(),
                       receiving_facility=receiving_facility.strip())
        try:
            server = listener(institution=inst, host=host, port=port, options=read, max_frame=max_frame,
                              timeout=timeout, max_connections=max_connections, allowed=allowed)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port} ({exc.strerror or exc})", returncode=2) from None

        def stop(signum, frame):
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, stop)  # stopped by a service manager like Ctrl-C
        try:
            self.stdout.write(f"HL7 listener of {inst.code} on {host}:{server.port} (MLLP; types "
                              f"{', '.join(sorted(types))}); Ctrl-C or SIGTERM stops it")
            self.stdout.flush()
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("HL7 listener stopped")
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()
