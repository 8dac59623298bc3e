"""What the audit log keeps of logins, and who reads it: a name tried at a failed login that is no account
(often a password typed into the user-name box) is kept only as a keyed hash, and login events are shown
to superusers only, never to an institution's auditor. Each test is the attack: the mistyped password,
then everyone who can read the audit log looking for it."""
from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from audit.events import LOGIN_EVENTS, Event
from audit.models import AuditEvent
from audit.services import record_event
from pdas.signals import logged_name
from sites.roles import AUDITOR
from tests.factories import InstitutionFactory, make_user

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-42"
TYPED_IN_THE_WRONG_BOX = "MySecretPass!"


def _every_stored_value() -> str:
    return json.dumps([list(row) for row in AuditEvent.objects.values_list()], default=str)


def test_a_password_typed_as_the_user_name_is_never_stored(client, settings):
    make_user("physicist", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):  # up to a lockout, which names the pair too
        client.post(reverse("login"), {"username": TYPED_IN_THE_WRONG_BOX, "password": "physicist"})

    assert TYPED_IN_THE_WRONG_BOX not in _every_stored_value()
    names = {row.detail["username"] for row in AuditEvent.objects.filter(event__in=sorted(LOGIN_EVENTS))}
    assert len(names) == 1  # the same name gives the same value: repeated attempts still show as one name
    assert re.fullmatch(r"hmac:[0-9a-f]{16}", names.pop())
    assert AuditEvent.objects.filter(event="auth.lockout").exists()


def test_a_failed_login_of_an_existing_account_names_it(client):
    make_user("physicist", password=PASSWORD)
    client.post(reverse("login"), {"username": "physicist", "password": "wrong-guess"})

    assert AuditEvent.objects.get(event="auth.login_failed").detail["username"] == "physicist"


def test_the_hash_is_keyed(settings):
    first = logged_name(TYPED_IN_THE_WRONG_BOX)
    settings.SECRET_KEY = "another-site-another-key-" * 3

    assert logged_name(TYPED_IN_THE_WRONG_BOX) != first  # not a plain hash anyone could compute and compare


@pytest.fixture
def logins():
    """One institution's event, and one event of each login kind."""
    institution = InstitutionFactory(code="ALPHA")
    record_event(actor="x", event=Event.PATIENT_VIEW, institution="ALPHA", mrns=["A00001"])
    for kind in sorted(LOGIN_EVENTS):
        record_event(actor="anonymous", event=kind, detail={"username": "physicist", "ip": "10.0.0.7"})
    return institution


def _client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _shown_events(client: Client) -> set[str]:
    return {row.record.event for row in client.get(reverse("audit:log")).context["table"].paginated_rows}


def test_an_institution_auditor_sees_no_login_event_on_the_page_or_in_the_export(logins):
    auditor = _client_of(make_user("auditor", roles=[AUDITOR], institutions=[logins]))

    shown = _shown_events(auditor)
    export = auditor.get(reverse("audit:log"), {"_export": "csv"}).content.decode()

    assert "patient.view" in shown and not shown & LOGIN_EVENTS
    assert "A00001" in export and not any(kind in export for kind in LOGIN_EVENTS)
    assert "10.0.0.7" not in export
    searched = auditor.get(reverse("audit:log"), {"event": "auth."}).context["table"].paginated_rows
    assert [row.record.event for row in searched if row.record.event.startswith("auth.")] == []


def test_a_superuser_sees_the_login_events(logins):
    superuser = _client_of(make_user("root", is_staff=True, is_superuser=True))

    assert LOGIN_EVENTS <= _shown_events(superuser)
    export = superuser.get(reverse("audit:log"), {"_export": "csv"}).content.decode()
    assert all(kind in export for kind in LOGIN_EVENTS)
