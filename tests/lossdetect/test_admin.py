"""MRN aliases are edited in the admin under the import's rules, every change and every read audited;
the records of other planning systems are view-only."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from audit.models import AuditEvent
from lossdetect.models import MrnAlias, OtherTpsRecord
from tests.factories import InstitutionFactory, LossScanFactory, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def institution(db):
    return InstitutionFactory(code="PUMCH")


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root-admin", password="not-used-here-123"))
    return client


def add(client, institution, old_mrn, mrn, reason="merged"):
    return client.post(reverse("admin:lossdetect_mrnalias_add"),
                       {"institution": institution.pk, "old_mrn": old_mrn, "mrn": mrn, "reason": reason})


def test_an_alias_added_changed_and_deleted_in_the_admin_is_audited(institution, admin_client):
    response = add(admin_client, institution, " 000100 ", "000200", "renumbered")
    assert response.status_code == 302, response.content.decode()[-2000:]
    alias = MrnAlias.objects.get()
    assert (alias.old_mrn, alias.mrn, alias.source, alias.recorded_by) == ("000100", "000200", "admin", "root-admin")
    event = AuditEvent.objects.filter(event="mrnalias.change").latest("id")
    assert (event.actor, event.institution, event.mrns, event.detail["action"], event.detail["reason"]) == (
        "root-admin", "PUMCH", ["000100", "000200"], "add", "renumbered")

    url = reverse("admin:lossdetect_mrnalias_change", args=[alias.pk])
    response = admin_client.post(url, {"old_mrn": "000100", "mrn": "000201", "reason": "typo fixed"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    alias.refresh_from_db()
    assert (alias.mrn, alias.reason) == ("000201", "typo fixed")
    event = AuditEvent.objects.filter(event="mrnalias.change").latest("id")
    assert event.detail["action"] == "change" and event.detail["fields"] == ["mrn", "reason"]
    assert event.detail["before"] == {"old_mrn": "000100", "mrn": "000200", "reason": "renumbered"}
    assert event.mrns == ["000100", "000200", "000201"]

    response = admin_client.post(reverse("admin:lossdetect_mrnalias_delete", args=[alias.pk]), {"post": "yes"})
    assert response.status_code == 302 and not MrnAlias.objects.exists()
    event = AuditEvent.objects.filter(event="mrnalias.change").latest("id")
    assert (event.detail["action"], event.mrns) == ("delete", ["000100", "000201"])


@pytest.mark.parametrize(("old_mrn", "mrn", "message"), [
    ("000300", "000100", "would make a cycle (000300 -&gt; 000100 -&gt; 000200 -&gt; 000300)"),
    ("000555", "000555", "an MRN cannot be an alias of itself"),
    ("000100", "000999", "is already an alias of"),
])
def test_the_admin_refuses_what_the_import_refuses(institution, admin_client, old_mrn, mrn, message):
    MrnAlias.objects.create(institution=institution, old_mrn="000100", mrn="000200")
    MrnAlias.objects.create(institution=institution, old_mrn="000200", mrn="000300")
    response = add(admin_client, institution, old_mrn, mrn)
    assert response.status_code == 200 and message in response.content.decode()
    assert MrnAlias.objects.count() == 2 and not AuditEvent.objects.filter(event="mrnalias.change").exists()


def test_the_delete_action_audits_each_alias(institution, admin_client):
    aliases = [MrnAlias.objects.create(institution=institution, old_mrn=f"{i}", mrn=f"{i}0") for i in (1, 2)]
    response = admin_client.post(reverse("admin:lossdetect_mrnalias_changelist"), {
        "action": "delete_selected", "_selected_action": [a.pk for a in aliases], "post": "yes"})
    assert response.status_code == 302 and not MrnAlias.objects.exists()
    assert sorted(e.mrns for e in AuditEvent.objects.filter(event="mrnalias.change")) == [["1", "10"], ["2", "20"]]


def test_reading_the_aliases_in_the_admin_is_audited_and_scoped(institution, client):
    other = InstitutionFactory(code="CAMS")
    MrnAlias.objects.create(institution=institution, old_mrn="000100", mrn="000200")
    MrnAlias.objects.create(institution=other, old_mrn="CAMS1", mrn="CAMS2")
    client.force_login(make_user("admin", roles=["archive admin"], institutions=[institution], is_staff=True))
    response = client.get(reverse("admin:lossdetect_mrnalias_changelist"))
    assert response.status_code == 200
    assert [a.old_mrn for a in response.context["cl"].result_list] == ["000100"]
    event = AuditEvent.objects.get(event="admin.view")
    assert (event.institution, event.mrns, event.detail["model"]) == ("PUMCH", ["000100", "000200"],
                                                                      "lossdetect.mrnalias")
    assert add(client, other, "X", "Y").status_code == 200  # CAMS is no choice of this user
    assert not MrnAlias.objects.filter(old_mrn="X").exists()


def test_records_of_other_planning_systems_are_view_only(institution, admin_client):
    import datetime as dt

    scan = LossScanFactory(institution=institution)
    record = OtherTpsRecord.objects.create(scan=scan, mrn="O1", plan_label="HN", planning_system="Monaco",
                                           first_delivery=dt.datetime(2024, 3, 4, tzinfo=dt.timezone.utc))
    assert admin_client.get(reverse("admin:lossdetect_othertpsrecord_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:lossdetect_othertpsrecord_add")).status_code == 403
    assert admin_client.post(reverse("admin:lossdetect_othertpsrecord_delete", args=[record.pk]),
                             {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(event="admin.view").mrns == ["O1"]
