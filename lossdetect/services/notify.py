"""E-mail to an institution's recipients (``notify_emails``) when a scan needs a person.

Sent when a scan finds a lost plan, skipped R&V rows, or failed (then nobody knows what was lost).
The mail names MRNs and plan labels, not patient names, and links to the scan page; sending it
is recorded as a ``lossscan.notify`` audit event.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.actors import SYSTEM
from audit.events import Event
from audit.services import record_event
from lossdetect.models import LossScan

logger = logging.getLogger(__name__)
LISTED = 50  # findings written into the mail; the page has them all


def scan_url(scan: LossScan) -> str:
    return settings.PDAS_BASE_URL.rstrip("/") + reverse("lossdetect:scan-detail", args=[scan.pk])


def _message(scan: LossScan) -> tuple[str, str]:
    code, window = scan.institution.code, f"{scan.window_from} .. {scan.window_to}"
    if scan.status == LossScan.Status.FAILED:
        return (f"[PDAS] {code}: loss scan {window} FAILED, losses unknown",
                f"The loss scan of {code} for {window} could not run:\n\n{scan.error}\n\n"
                f"Nothing is known about lost plans in this window until a scan succeeds.\n\n{scan_url(scan)}\n")
    lost = list(scan.findings.filter(category__endswith="_lost").order_by("first_delivery", "mrn"))
    zone = scan.institution.zone
    lines = [f"{f.mrn}  {f.plan_label}  first delivery {timezone.localtime(f.first_delivery, zone):%Y-%m-%d %H:%M}"
             f"  {f.get_category_display()}" + (f"  seen in {f.found_in}" if f.found_in else "")
             for f in lost[:LISTED]]
    if len(lost) > LISTED:
        lines.append(f"... and {len(lost) - LISTED} more")
    problems = len(scan.source_warnings)
    subject = f"[PDAS] {code}: {len(lost)} lost plan(s) in {window}" if lost else \
        f"[PDAS] {code}: {problems} R&V row(s) could not be checked in {window}"
    body = [f"Loss scan of {code} for {window}: {len(lost)} delivered plan(s) are neither archived nor in a "
            f"clinical or pending-archive group.", "", *lines]
    if problems:
        body += ["", f"{problems} R&V row(s) were skipped and could not be checked (see the scan page)."]
    body += ["", scan_url(scan), ""]
    return subject, "\n".join(body)


def send_scan_alert(*, scan: LossScan) -> int:
    """Mail the institution's recipients about ``scan``; returns the number of mails sent (0 or 1)."""
    recipients = [a for a in scan.institution.notify_emails or [] if isinstance(a, str) and a.strip()]
    if not recipients:
        return 0
    subject, body = _message(scan)
    mrns = sorted(set(scan.findings.filter(category__endswith="_lost").values_list("mrn", flat=True)))
    try:
        sent = send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as exc:  # SMTP down: the scan result stands; say so in the audit log
        logger.warning("loss scan %s: mail to %s failed: %s", scan.pk, recipients, exc)
        record_event(actor=SYSTEM, event=Event.LOSSSCAN_NOTIFY, institution=scan.institution.code, mrns=mrns,
                     obj=scan, outcome=AuditEvent.Outcome.FAILED,
                     detail={"recipients": recipients, "error": " ".join(str(exc).split())[:500]})
        return 0
    record_event(actor=SYSTEM, event=Event.LOSSSCAN_NOTIFY, institution=scan.institution.code, mrns=mrns, obj=scan,
                 detail={"recipients": recipients, "subject": subject})
    return sent
