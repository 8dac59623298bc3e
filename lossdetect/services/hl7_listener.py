"""The HL7 listener of one institution (``manage.py hl7_listener``): MLLP on a TCP port, each ADT message
read by ``lossdetect.services.hl7_messages`` and its MRN aliases recorded through
``lossdetect.services.aliases`` (the one write path: the rules, the audit rows), then acknowledged.

One listener serves one institution: the MRNs of a message are that institution's (an interface
engine that feeds several institutions sends each its own listener, on its own port). Each message is
logged on one line (institution, control ID, type, sender, MSA-1 and why), never with a patient's name.
The server's threads each open their own database connection and close it when their client leaves.
"""
from __future__ import annotations

import logging
from ipaddress import IPv4Network, IPv6Network
from typing import Collection

from django.db import DatabaseError, close_old_connections, connections, transaction

from connectors.mllp import MAX_CONNECTIONS, MAX_FRAME, TIMEOUT, MllpServer
from lossdetect.models import MrnAlias
from lossdetect.services.aliases import AliasRefused, add_mrn_alias
from lossdetect.services.hl7_messages import (
    ACCEPT, DEFAULTS, INTERNAL_ERROR, REJECT, Decision, Header, Options, ack, framing_reject, read_message,
)
from sites.models import Institution

log = logging.getLogger("lossdetect.hl7")

_ACTOR_LENGTH = MrnAlias._meta.get_field("recorded_by").max_length
_REASON_LENGTH = MrnAlias._meta.get_field("reason").max_length


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def record(decision: Decision, *, institution: Institution) -> Decision:
    """Record the decision's aliases, all or none (one transaction); the decision answered accordingly."""
    header = decision.header
    actor = f"{header.sender} (HL7)"[:_ACTOR_LENGTH]
    reason = f"HL7 {header.message_type} message {header.control_id} from {header.sender}"[:_REASON_LENGTH]
    detail = {"hl7": {"control_id": header.control_id, "message_type": header.message_type, "sender": header.sender}}
    added: list[tuple[str, str]] = []
    try:
        with transaction.atomic():
            for old_mrn, mrn in decision.aliases:
                _alias, created = add_mrn_alias(institution=institution, old_mrn=old_mrn, mrn=mrn, reason=reason,
                                                actor=actor, source=MrnAlias.Source.HL7, detail=detail)
                if created:
                    added.append((old_mrn, mrn))
    except AliasRefused as exc:
        return decision.refused(str(exc))
    except DatabaseError as exc:  # the engine resends on AR: a database back later takes the message then
        return decision.refused(f"the database cannot be written now ({_first_line(exc)}); resend later",
                                error=INTERNAL_ERROR, code=REJECT)
    return decision.recorded(added)


def receive(data: bytes, *, institution: Institution, options: Options) -> bytes:
    """The ACK of one message, its aliases recorded; never raises (a bug answers AR 207 and is logged)."""
    decision = Decision(Header(), REJECT)
    try:
        decision = read_message(data, options)
        if decision.code == ACCEPT and decision.aliases:
            close_old_connections()  # a connection the database dropped since the last message is replaced
            decision = record(decision, institution=institution)
    except Exception as exc:  # a bug: this message is answered, the next ones are still taken
        log.exception("HL7 %s %s: handling failed", institution.code, decision.header.control_id or "-")
        decision = decision.refused(f"application internal error ({type(exc).__name__}); resend later",
                                    error=INTERNAL_ERROR, code=REJECT)
    header = decision.header
    log.info("HL7 %s %s %s from %s: %s%s", institution.code, header.control_id or "-", header.message_type or "?",
             header.sender, decision.code, f" {decision.text}" if decision.text else "")
    return ack(decision)


def listener(*, institution: Institution, host: str, port: int, options: Options = DEFAULTS,
             max_frame: int = MAX_FRAME, timeout: float = TIMEOUT, max_connections: int = MAX_CONNECTIONS,
             allowed: Collection[IPv4Network | IPv6Network] | None = None) -> MllpServer:
    """The institution's MLLP server, bound to ``host:port`` (port 0: a free one) and not yet serving;
    ``OSError`` when the address cannot be bound. ``allowed``: the networks the interface engine connects
    from (None: any)."""
    return MllpServer((host, port), handle=lambda data: receive(data, institution=institution, options=options),
                      reject=framing_reject, on_connection_end=connections.close_all, max_frame=max_frame,
                      timeout=timeout, max_connections=max_connections, allowed=allowed)
