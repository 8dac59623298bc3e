"""Alerts: raised once, audited, mailed over a real SMTP server, retried when the mail fails, cleared when
the condition is gone."""
from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import Alert
from alerts.services import send_unsent_alerts, settle_alerts
from audit.models import AuditEvent
from tests.factories import InstitutionFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the mail goes out when the transaction commits

KIND = Alert.Kind.NO_LOSS_SCAN


def test_an_alert_is_raised_once_mailed_once_and_cleared_when_resolved(smtp_mail):
    address = smtp_mail.new_address()
    inst = InstitutionFactory(code="ALRT", notify_emails=[address])
    raised = settle_alerts(institution=inst, kind=KIND, standing={"": {"days": 9, "last": "2026-11-10 06:00"}},
                           actor="t")
    assert len(raised) == 1
    again = settle_alerts(institution=inst, kind=KIND, standing={"": {"days": 10, "last": "2026-11-10 06:00"}},
                          actor="t")
    assert again == [] and Alert.objects.standing().get().detail["days"] == 10

    mails = smtp_mail.messages_to(address)
    assert len(mails) == 1, "one mail per alert, not one per check"
    assert mails[0]["Subject"] == "[PDAS] ALRT: No loss scan"
    assert "No loss scan has succeeded for 9 days (last: 2026-11-10 06:00)" in mails[0].get_content()
    assert Alert.objects.get().notified_at is not None
    assert AuditEvent.objects.filter(event="alert.raise").count() == 1
    assert AuditEvent.objects.filter(event="alert.notify", outcome="ok").count() == 1

    settle_alerts(institution=inst, kind=KIND, standing={}, actor="t")
    alert = Alert.objects.get()
    assert alert.cleared_at is not None and not Alert.objects.standing().exists()
    assert AuditEvent.objects.filter(event="alert.clear").get().detail["kind"] == "no_loss_scan"

    settle_alerts(institution=inst, kind=KIND, standing={"": {"days": 8}}, actor="t")
    assert Alert.objects.count() == 2 and len(smtp_mail.messages_to(address)) == 2, "a recurrence is a new alert"


def test_a_mail_that_fails_is_audited_and_sent_at_a_later_tick(smtp_mail, settings):
    address = smtp_mail.new_address()
    inst = InstitutionFactory(code="ALRT2", notify_emails=[address])
    settings.EMAIL_PORT = 1  # nothing listens there: the SMTP server is "down"
    settle_alerts(institution=inst, kind=KIND, standing={"": {"days": 9}}, actor="t")
    alert = Alert.objects.get()
    assert alert.notified_at is None and alert.notify_error
    assert AuditEvent.objects.filter(event="alert.notify", outcome="failed").count() == 1
    assert smtp_mail.messages_to(address) == []

    settings.EMAIL_PORT = smtp_mail.port
    assert send_unsent_alerts() == 1
    assert len(smtp_mail.messages_to(address)) == 1
    assert send_unsent_alerts() == 0, "mailed once"


def test_subjects_of_one_kind_are_settled_apart(smtp_mail):
    inst = InstitutionFactory(code="ALRT3")  # no recipients: shown on the home page only
    kind = Alert.Kind.TARGET_UNREACHABLE
    settle_alerts(institution=inst, kind=kind, standing={"a": {"days": 4}, "b": {"days": 5}}, actor="t")
    settle_alerts(institution=inst, kind=kind, standing={"b": {"days": 6}}, actor="t")
    assert list(Alert.objects.standing().values_list("subject", flat=True)) == ["b"]
    assert Alert.objects.get(subject="a").cleared_at is not None
    assert Alert.objects.get(subject="b").notified_at is None


def test_one_standing_alert_per_subject_is_enforced_by_the_database():
    inst = InstitutionFactory(code="ALRT4")
    now = timezone.now()
    Alert.objects.create(institution=inst, kind=KIND, raised_at=now, last_seen_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(institution=inst, kind=KIND, raised_at=now, last_seen_at=now)
    Alert.objects.update(cleared_at=now + dt.timedelta(seconds=1))
    Alert.objects.create(institution=inst, kind=KIND, raised_at=now, last_seen_at=now)  # a cleared one does not count
