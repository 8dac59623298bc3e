"""Writing MRN aliases (lossdetect.services.aliases): the rules, and one audit row per change."""
from __future__ import annotations

import pytest

from audit.models import AuditEvent
from lossdetect.models import MrnAlias
from lossdetect.services.aliases import AliasRefused, add_mrn_alias, change_mrn_alias, delete_mrn_alias
from tests.factories import InstitutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def institution(db):
    return InstitutionFactory(code="PUMCH")


def test_adding_the_same_alias_twice_writes_once(institution):
    alias, added = add_mrn_alias(institution=institution, old_mrn=" A ", mrn="B", reason="  renumbered \n 2024 ",
                                 actor="alice")
    assert added and (alias.old_mrn, alias.mrn, alias.reason, alias.recorded_by) == ("A", "B", "renumbered 2024",
                                                                                      "alice")
    again, added = add_mrn_alias(institution=institution, old_mrn="A", mrn="B", actor="bob")
    assert not added and again.pk == alias.pk and again.recorded_by == "alice"
    assert AuditEvent.objects.filter(event="mrnalias.change").count() == 1


def test_aliases_are_per_institution(institution):
    other = InstitutionFactory(code="CAMS")
    add_mrn_alias(institution=institution, old_mrn="A", mrn="B", actor="t")
    add_mrn_alias(institution=other, old_mrn="B", mrn="A", actor="t")  # no cycle: another institution's MRNs
    assert MrnAlias.objects.count() == 2


def test_a_change_is_checked_without_the_alias_it_changes(institution):
    first, _ = add_mrn_alias(institution=institution, old_mrn="A", mrn="B", actor="t")
    add_mrn_alias(institution=institution, old_mrn="B", mrn="C", actor="t")
    with pytest.raises(AliasRefused, match=r"'B' -> 'A' would make a cycle \(B -> A -> B\)"):
        change_mrn_alias(alias=MrnAlias.objects.get(old_mrn="B"), old_mrn="B", mrn="A", reason="", actor="t")
    changed = change_mrn_alias(alias=first, old_mrn="A", mrn="D", reason="typo", actor="carol")
    assert (changed.mrn, changed.recorded_by) == ("D", "carol")
    event = AuditEvent.objects.filter(event="mrnalias.change").latest("id")
    assert event.detail["before"] == {"old_mrn": "A", "mrn": "B", "reason": ""} and event.mrns == ["A", "B", "D"]
    count = AuditEvent.objects.count()
    change_mrn_alias(alias=changed, old_mrn="A", mrn="D", reason="typo", actor="carol")  # nothing changed
    assert AuditEvent.objects.count() == count


@pytest.mark.parametrize(("old_mrn", "mrn", "message"), [
    ("", "B", "old_mrn is empty"), ("A", " ", "new_mrn is empty"), ("A" * 65, "B", "longer than 64 characters"),
    ("A", "A", "itself"),
])
def test_refused_aliases_write_nothing(institution, old_mrn, mrn, message):
    with pytest.raises(AliasRefused, match=message):
        add_mrn_alias(institution=institution, old_mrn=old_mrn, mrn=mrn, actor="t")
    assert not MrnAlias.objects.exists() and not AuditEvent.objects.exists()


def test_delete_is_audited(institution):
    alias, _ = add_mrn_alias(institution=institution, old_mrn="A", mrn="B", reason="why", actor="t")
    delete_mrn_alias(alias=alias, actor="dave")
    assert not MrnAlias.objects.exists()
    event = AuditEvent.objects.filter(event="mrnalias.change").latest("id")
    assert (event.actor, event.detail["action"], event.detail["reason"], event.mrns) == ("dave", "delete", "why",
                                                                                          ["A", "B"])
