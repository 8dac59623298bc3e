"""The login lockout counts failures per (user name, address) pair, so failures from one address cannot
keep a person out of their account from another; one address that tries many names is still throttled
(pdas/lockout.py). Each test is the attack, sent as requests from the addresses named."""
from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-42"
ATTACKER, VICTIM_DESK, SPRAYER, OTHER_DESK = "10.0.0.66", "10.0.0.20", "10.0.0.99", "10.0.0.21"


def _log_in(client, username: str, password: str, address: str) -> int:
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address).status_code


def test_failures_from_one_address_lock_that_address_out_of_the_name_only(client, settings):
    make_user("physicist", password=PASSWORD)
    for _ in range(2 * settings.AXES_FAILURE_LIMIT):  # someone who knows the name, to keep its owner out
        _log_in(client, "physicist", "wrong-guess", ATTACKER)

    assert _log_in(client, "physicist", PASSWORD, ATTACKER) == 429  # the pair is locked, right password or not
    assert _log_in(client, "physicist", PASSWORD, VICTIM_DESK) == 302  # the owner, at their own desk
    lockout = AuditEvent.objects.filter(event="auth.lockout").first()
    assert (lockout.detail["username"], lockout.detail["ip"]) == ("physicist", ATTACKER)


def test_one_address_trying_many_names_is_throttled_for_every_name(client, settings):
    settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT = 3 * settings.AXES_FAILURE_LIMIT
    make_user("physicist", password=PASSWORD)
    for n in range(settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT - 1):  # one guess per name: no pair reaches its limit
        assert _log_in(client, f"guess{n}", "Spring2024!", SPRAYER) == 200
    assert _log_in(client, "physicist", PASSWORD, SPRAYER) == 302  # below the address's limit: still allowed
    client.post(reverse("logout"))

    assert _log_in(client, "guess-last", "Spring2024!", SPRAYER) == 429  # the address reached its limit
    assert _log_in(client, "physicist", PASSWORD, SPRAYER) == 429  # every name, from there
    assert _log_in(client, "physicist", PASSWORD, OTHER_DESK) == 302  # not from elsewhere


def test_a_success_clears_its_own_pair_not_the_names_tried_before_from_there(client, settings):
    """An attacker with an account of their own cannot log in now and then to wipe the address's count."""
    settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT = 2 * settings.AXES_FAILURE_LIMIT
    make_user("insider", password=PASSWORD)
    for n in range(settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT - 1):
        _log_in(client, f"colleague{n % 3}", "guess", SPRAYER)
    assert _log_in(client, "insider", PASSWORD, SPRAYER) == 302
    client.post(reverse("logout"))

    assert _log_in(client, "colleague0", "guess", SPRAYER) == 429


def test_the_page_warns_before_the_last_attempt_and_says_what_was_locked_and_for_how_long(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    make_user("physicist", password=PASSWORD)
    first = client.post(reverse("login"), {"username": "physicist", "password": "x"}, REMOTE_ADDR=ATTACKER)
    assert 'id="last-attempt"' not in first.content.decode()
    second = client.post(reverse("login"), {"username": "physicist", "password": "x"}, REMOTE_ADDR=ATTACKER)
    assert 'One more failed attempt locks the user name “physicist” at this workstation for 30 minutes.' \
        in second.content.decode()
    locked = client.post(reverse("login"), {"username": "physicist", "password": "x"}, REMOTE_ADDR=ATTACKER)
    body = locked.content.decode()
    assert locked.status_code == 429
    assert "The user name “physicist” is locked at this workstation after 3 failed log-in attempts" in body
    assert "it still logs in from other workstations" in body and "Try again in 30 minutes" in body


def test_a_workstation_locked_for_every_name_says_so(client, settings):
    settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT = 4
    for n in range(4):
        client.post(reverse("login"), {"username": f"guess{n}", "password": "x"}, REMOTE_ADDR=SPRAYER)
    body = client.post(reverse("login"), {"username": "another", "password": "x"}, REMOTE_ADDR=SPRAYER).content.decode()
    assert "This workstation is locked for every user name after 4 failed log-in attempts" in body
