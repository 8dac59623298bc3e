"""One name per actor, for the audit log and the job rows alike."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from audit.actors import ANONYMOUS, SCHEDULER, actor_name
from core.commands import cli_actor
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_a_user_a_name_and_the_scheduler():
    assert actor_name(make_user("physicist")) == "physicist"
    assert actor_name(AnonymousUser()) == ANONYMOUS
    assert actor_name("host:123:7") == "host:123:7"
    assert actor_name(cli_actor()).endswith("command line)")
    assert actor_name(None) == SCHEDULER == "scheduler"


def test_anything_else_is_a_bug_not_a_name():
    with pytest.raises(TypeError, match="not int"):
        actor_name(42)
    with pytest.raises(ValueError, match="empty"):
        actor_name(" ")


def test_the_audit_log_names_actors_with_the_same_helper():
    from audit.events import Event
    from audit.services import record_event

    assert record_event(actor=None, event=Event.QUARANTINE_PURGE).actor == SCHEDULER
    assert record_event(actor=make_user("physicist"), event=Event.PATIENT_VIEW).actor == "physicist"
    assert record_event(actor=AnonymousUser(), event=Event.ACCESS_DENIED).actor == ANONYMOUS
    with pytest.raises(TypeError):
        record_event(actor=object(), event=Event.PATIENT_VIEW)
