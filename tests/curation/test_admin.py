"""Rules are edited in the admin (audited) and change what curation says; records are view-only."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from audit.models import AuditEvent
from curation.models import CurationFinding, NamingRule, TransitionalPattern
from curation.services.curate import run_curation
from demo_site import PlanSpec

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root-admin", password="not-used-here-123"))
    return client


def categories(site, path) -> dict[str, list[str]]:
    run = run_curation(institution=site.inst, actor="tester")
    return {f.category: f.reasons for f in run.findings.filter(tps_path=path)}


def test_a_rule_added_in_the_admin_changes_the_result_and_is_audited(site, admin_client):
    path = site.add(1, mrn="A12345")
    assert categories(site, path) == {"ready": []}

    response = admin_client.post(reverse("admin:curation_namingrule_add"), {
        "institution": site.inst.pk, "applies_to": "mrn", "regex": r"^[0-9]+$", "mode": "must_match",
        "message": "MRN must be digits only", "enabled": "on", "order": "5",
    })
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert categories(site, path) == {"naming": ["MRN 'A12345': MRN must be digits only"]}
    event = AuditEvent.objects.filter(event="config.change").latest("id")
    assert event.institution == "PUMCH" and event.actor == "root-admin" and event.detail["action"] == "add"
    assert event.detail["regex"] == r"^[0-9]+$"


def test_disabling_a_default_rule_in_the_admin_clears_the_finding(site, admin_client):
    path = site.add(1, plans=[PlanSpec(0, "PTV 50/25")])
    assert list(categories(site, path)) == ["naming"]
    rule = NamingRule.objects.get(institution=site.inst, applies_to="plan_name", mode="must_not_match")
    url = reverse("admin:curation_namingrule_change", args=[rule.pk])
    response = admin_client.post(url, {"institution": site.inst.pk, "applies_to": "plan_name", "regex": rule.regex,
                                       "mode": "must_not_match", "message": rule.message, "order": rule.order})
    assert response.status_code == 302
    assert categories(site, path) == {"ready": []}
    assert AuditEvent.objects.filter(event="config.change", detail__fields=["enabled"]).exists()


def test_a_transitional_pattern_edited_in_the_admin(site, admin_client):
    path = site.add(1, plans=[PlanSpec(0, "LUNG"), PlanSpec(1, "LUNG try2")])
    assert categories(site, path) == {"ready": []}
    admin_client.post(reverse("admin:curation_transitionalpattern_add"), {
        "institution": site.inst.pk, "regex": r"\btry\d+$", "message": "an optimisation attempt", "enabled": "on"})
    assert categories(site, path)["transitional"] == [
        "plan Plan_1 'LUNG try2' looks like an intermediate plan: an optimisation attempt"]
    pattern = TransitionalPattern.objects.get(regex=r"\btry\d+$")
    admin_client.post(reverse("admin:curation_transitionalpattern_delete", args=[pattern.pk]), {"post": "yes"})
    assert categories(site, path) == {"ready": []}
    assert AuditEvent.objects.filter(event="config.change", detail__action="delete").exists()


def test_a_bad_expression_is_refused_with_a_one_line_error(site, admin_client):
    response = admin_client.post(reverse("admin:curation_namingrule_add"), {
        "institution": site.inst.pk, "applies_to": "mrn", "regex": "[0-9", "mode": "must_match",
        "message": "x", "enabled": "on", "order": "5"})
    assert response.status_code == 200
    assert "bad regular expression: unterminated character set at position 0" in response.content.decode()
    assert not NamingRule.objects.filter(regex="[0-9").exists()


def test_findings_are_view_only_and_their_pages_audited(site, admin_client):
    path = site.add(1, mrn="000777")
    run_curation(institution=site.inst, actor="tester")
    finding = CurationFinding.objects.get(tps_path=path)
    url = reverse("admin:curation_curationfinding_change", args=[finding.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"category": "naming"}).status_code == 403
    assert AuditEvent.objects.filter(event="admin.view", mrns=["000777"]).exists()
