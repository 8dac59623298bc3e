"""Raising, clearing and mailing alerts (docs/keeping.md, "Alerts").

``settle_alerts`` is what every check calls: given the subjects of one kind that stand now, it raises
the new ones (audited once, e-mailed once the transaction commits) and clears those that are gone
(audited). An alert whose e-mail could not go out is tried again by ``send_unsent_alerts`` on every
watchdog tick, so an SMTP outage delays an alert but never swallows it.
"""
from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation

from alerts.models import Alert
from audit.events import Event
from audit.services import record_event
from sites.models import Institution

log = logging.getLogger(__name__)


def settle_alerts(*, institution: Institution, kind: str, standing: dict[str, dict], actor,
                  now: dt.datetime | None = None) -> list[Alert]:
    """Make the standing alerts of ``kind`` for ``institution`` exactly ``standing`` (subject -> detail).

    A detail's ``mrn`` names the patient an alert is about (its audit rows carry it). Returns the alerts
    raised now."""
    now = now or timezone.now()
    raised = []
    with transaction.atomic():
        current = {a.subject: a for a in Alert.objects.select_for_update().standing()
                   .filter(institution=institution, kind=kind)}
        for subject, detail in standing.items():
            alert = current.get(subject)
            if alert is not None:
                Alert.objects.filter(pk=alert.pk).update(last_seen_at=now, detail=detail)
                continue
            alert = Alert.objects.create(institution=institution, kind=kind, subject=subject, detail=detail,
                                         raised_at=now, last_seen_at=now)
            record_event(actor=actor, event=Event.ALERT_RAISE, institution=institution.code, obj=alert,
                         mrns=[alert.mrn] if alert.mrn else [], outcome="failed",
                         detail={"kind": kind, "subject": subject, **detail})
            raised.append(alert)
        for subject, alert in current.items():
            if subject not in standing:
                alert.cleared_at = now
                alert.save(update_fields=["cleared_at"])
                record_event(actor=actor, event=Event.ALERT_CLEAR, institution=institution.code, obj=alert,
                             mrns=[alert.mrn] if alert.mrn else [],
                             detail={"kind": kind, "subject": subject, "raised_at": alert.raised_at.isoformat()})
        if raised:
            ids = [a.pk for a in raised]
            transaction.on_commit(lambda: [send_alert_mail(alert_id=pk) for pk in ids])
    return raised


def _mail(alert: Alert) -> tuple[str, str]:
    with translation.override(settings.LANGUAGE_CODE):
        text = alert.message()
        raised = timezone.localtime(alert.raised_at, alert.institution.zone)
        subject = f"[PDAS] {alert.institution.code}: {alert.get_kind_display()}"
        body = (f"{text}\n\nRaised {raised:%Y-%m-%d %H:%M %Z}. It stays on the PDAS home page until the "
                f"condition is resolved.\n\n{settings.PDAS_BASE_URL.rstrip('/')}{reverse('home')}\n")
    return subject, body


def send_alert_mail(*, alert_id: int) -> bool:
    """Mail a standing alert to its institution's ``notify_emails`` once; True when it went out."""
    alert = Alert.objects.select_related("institution").filter(pk=alert_id, cleared_at__isnull=True,
                                                             notified_at__isnull=True).first()
    if alert is None:
        return False
    recipients = [a for a in alert.institution.notify_emails or [] if isinstance(a, str) and a.strip()]
    if not recipients:
        return False  # shown on the home page only; mailed once an address is configured
    subject, body = _mail(alert)
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as exc:  # noqa: BLE001 - SMTP down: the alert stands and is mailed at a later tick
        error = " ".join(str(exc).split())[:500] or type(exc).__name__
        log.warning("alert %s: mail to %s failed: %s", alert.pk, recipients, error)
        with transaction.atomic():
            Alert.objects.filter(pk=alert.pk).update(notify_error=error)
            record_event(actor=None, event=Event.ALERT_NOTIFY, institution=alert.institution.code, obj=alert,
                         outcome="failed", detail={"kind": alert.kind, "recipients": recipients, "error": error})
        return False
    with transaction.atomic():
        Alert.objects.filter(pk=alert.pk).update(notified_at=timezone.now(), notify_error="")
        record_event(actor=None, event=Event.ALERT_NOTIFY, institution=alert.institution.code, obj=alert,
                     detail={"kind": alert.kind, "recipients": recipients, "subject": subject})
    return True


def send_unsent_alerts() -> int:
    """Retry the mail of every standing alert not mailed yet; returns how many went out."""
    ids = list(Alert.objects.standing().filter(notified_at__isnull=True).values_list("pk", flat=True))
    return sum(send_alert_mail(alert_id=pk) for pk in ids)
