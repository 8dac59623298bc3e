"""Naming rules and transitional patterns from admins run with a time bound: an expression that backtracks
without end names itself in the patient's reasons and the curation of the others goes on."""
from __future__ import annotations

import time

import pytest

from curation.models import NamingRule, TransitionalPattern
from curation.services import rules
from curation.services.curate import run_curation
from demo_site import PlanSpec

pytestmark = pytest.mark.django_db

SLOW = r"^(a|aa)+$"  # exponential backtracking on "aaaa...!" in any backtracking engine
HOSTILE = "a" * 40 + "!"


def _findings(site):
    run = run_curation(institution=site.inst, actor="tester")
    return run, {f.tps_path: (f.category, f.reasons) for f in run.findings.all()}


def test_a_rule_that_backtracks_without_end_is_a_reason_not_a_hang(site):
    rules.ensure_default_rules(institution=site.inst)
    NamingRule.objects.create(institution=site.inst, applies_to="last_name", mode="must_not_match", regex=SLOW,
                              message="no runs of a", order=1)
    slow = site.add(1, last_name=HOSTILE, first_name="MING")
    plain = site.add(2, last_name="WANG", first_name="MING")
    started = time.monotonic()
    run, found = _findings(site)
    assert time.monotonic() - started < 30  # unbounded, this search would run for years
    assert run.status == "done"
    assert found[plain] == ("ready", [])
    category, reasons = found[slow]
    assert category == "naming"
    assert reasons == [f"last name: naming rule {SLOW!r} (no runs of a) ran out of time ({rules.SEARCH_SECONDS} s) "
                       f"on {HOSTILE!r} and was not applied; simplify the expression"]


def test_a_slow_mrn_pattern_names_the_mrn(site):
    site.inst.mrn_pattern = SLOW
    site.inst.save()
    path = site.add(3, mrn="a" * 40 + "1")
    _run, found = _findings(site)
    assert found[path] == ("naming", [f"MRN: the site's MRN pattern {SLOW!r} ran out of time ({rules.SEARCH_SECONDS} s) "
                                      f"on {'a' * 40 + '1'!r} and was not applied; simplify the expression"])


def test_a_slow_transitional_pattern_names_the_plan(site):
    rules.ensure_default_rules(institution=site.inst)
    TransitionalPattern.objects.create(institution=site.inst, regex=SLOW, message="runs of a")
    path = site.add(4, plans=[PlanSpec(0, HOSTILE), PlanSpec(1, "LUNG")])
    _run, found = _findings(site)
    assert found[path] == ("transitional", [
        f"plan Plan_0 {HOSTILE!r}: transitional pattern {SLOW!r} ran out of time ({rules.SEARCH_SECONDS} s) "
        f"on {HOSTILE!r} and was not applied; simplify the expression"])


def test_rules_read_like_pythons_re():
    assert rules.compile_rule(r"\bQA\b", ignore_case=True).search("plan qa 2")
    assert rules.compile_rule(r"[0-9]{6}").fullmatch("000123")
    assert rules.compile_rule(r"^CopyOf_").search("CopyOf_LUNG")
