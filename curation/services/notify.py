"""E-mail to an institution's recipients (``notify_emails``) when a curation run finds something to fix.

The mail counts the patients per category and lists MRNs and folders (no names: a mail leaves the
hospital's systems more easily than a page), with a link to the tab that needs a look first.
Sending it is recorded as a ``curation.notify`` audit event.
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from audit.models import AuditEvent
from audit.actors import SYSTEM
from audit.events import Event
from audit.services import record_event
from curation.models import Category, CurationRun
from curation.selectors import run_findings

logger = logging.getLogger(__name__)
LISTED = 50  # patients written into the mail; the page has them all


def tab_url(*, institution_code: str, category: str) -> str:
    query = urlencode({"institution": institution_code, "tab": category})
    return f"{settings.PDAS_BASE_URL.rstrip('/')}{reverse('curation:index')}?{query}"


def _message(run: CurationRun, to_fix: list) -> tuple[str, str]:
    code = run.institution.code
    counts = {c: sum(1 for f in to_fix if f.category == c) for c in Category.values}
    first = next(c for c in Category.values if counts[c])
    subject = f"[PDAS] {code}: {len({f.patient_id for f in to_fix})} patient(s) of the pending group need a decision"
    lines = [f"Curation of {code}'s pending-archive group ({run.institution.pending_group}) on "
             f"{run.finished_at:%Y-%m-%d %H:%M} UTC found:", ""]
    lines += [f"  {Category(c).label}: {n}" for c, n in counts.items() if n]
    lines += ["", "These patients are not archived until their findings are fixed or acknowledged:", ""]
    lines += [f"  {f.mrn or '(no MRN)'}  {f.tps_path}  {f.get_category_display()}  ({len(f.reasons)} reason(s))"
              for f in to_fix[:LISTED]]
    if len(to_fix) > LISTED:
        lines.append(f"  ... and {len(to_fix) - LISTED} more")
    lines += ["", tab_url(institution_code=code, category=first), ""]
    return subject, "\n".join(lines)


def send_curation_alert(*, run: CurationRun) -> int:
    """Mail the run's findings that need a person; returns the number of mails sent (0 or 1)."""
    recipients = [a for a in run.institution.notify_emails or [] if isinstance(a, str) and a.strip()]
    if not recipients:
        return 0
    to_fix = [f for f in run_findings(run=run).exclude(category=Category.READY) if f.needs_person]
    if not to_fix:
        return 0
    subject, body = _message(run, to_fix)
    mrns = sorted({f.mrn for f in to_fix})
    try:
        sent = send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as exc:  # SMTP down: the run stands; say so in the audit log
        logger.warning("curation run %s: mail to %s failed: %s", run.pk, recipients, exc)
        record_event(actor=SYSTEM, event=Event.CURATION_NOTIFY, institution=run.institution.code, mrns=mrns, obj=run,
                     outcome=AuditEvent.Outcome.FAILED,
                     detail={"recipients": recipients, "error": " ".join(str(exc).split())[:500]})
        return 0
    record_event(actor=SYSTEM, event=Event.CURATION_NOTIFY, institution=run.institution.code, mrns=mrns, obj=run,
                 detail={"recipients": recipients, "subject": subject})
    return sent
