"""Standing alerts on the home page: red, in the reader's language, only for the user's institutions."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from alerts.services import settle_alerts
from sites.models import Membership
from tests.factories import InstitutionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("language, words", [("en", "Storage target array-9 has been unreachable for 4 days"),
                                             ("zh-hans", "存储目标 array-9 已 4 天无法访问")])
def test_a_standing_alert_is_shown_in_red_on_its_institutions_card_only(client, language, words):
    mine, other = InstitutionFactory(code="MINE"), InstitutionFactory(code="OTHER")
    settle_alerts(institution=mine, kind="target_unreachable", standing={"array-9": {"days": 4, "last": "x"}},
                  actor="t")
    settle_alerts(institution=other, kind="no_loss_scan", standing={"": {"days": 30}}, actor="t")
    user = User.objects.create_user("physicist", password="x-not-used-1234")
    Membership.objects.create(user=user, institution=mine)
    client.force_login(user)
    client.cookies["django_language"] = language

    body = client.get(reverse("home")).content.decode()
    assert body.count('class="alert alert-danger rounded-0 mb-0 py-2 pdas-alert"') == 1
    assert words in body
    assert "no_loss_scan" not in body, "another institution's alert is not shown"

    settle_alerts(institution=mine, kind="target_unreachable", standing={}, actor="t", now=timezone.now())
    assert "pdas-alert" not in client.get(reverse("home")).content.decode()
