"""A generated demo site (``make_demo_site``) scanned from each of its three R&V sources."""
from __future__ import annotations

import datetime as dt

import pytest

from demo_site import build_demo_site
from sites.models import Institution
from sites.services.site_config import load_site_config
from lossdetect.models import LossScan, PendingPlan
from lossdetect.services.scan import run_loss_scan

SUMMARY_KEYS = ["total", "pending", "first_course_lost", "first_course_unarchived", "first_course_archived",
                "recourse_lost", "recourse_unarchived", "recourse_archived", "other_tps"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_site(tmp_path_factory.mktemp("demo") / "site", patients=1, image_bytes=100_000)


@pytest.mark.django_db
@pytest.mark.parametrize("source", ["csv", "mosaiq", "dicom"])
def test_demo_site_gives_the_expected_categories_from_every_source(demo, source):
    load_site_config(path=demo.site_toml)
    institution = Institution.objects.get(code=demo.expected["institution"])
    institution.rv_url = demo.expected["rv_urls"][source]
    institution.save()
    window = demo.expected["scan_window"]
    scan = run_loss_scan(institution=institution, window_from=dt.date.fromisoformat(window["from"]),
                         window_to=dt.date.fromisoformat(window["to"]), trigger="manual", actor="test",
                         refresh_tps=True)
    assert scan.status == LossScan.Status.DONE, scan.error
    assert scan.source_warnings == []
    in_source = [d for d in demo.expected["deliveries"] if d["in_window"] and (source != "mosaiq" or d["in_mosaiq"])]
    summary = dict(demo.expected["summary"])
    if source == "mosaiq":  # MOSAIQ's tables cannot name a planning system: the demo leaves those plans out
        summary["other_tps"] = 0
    assert summary["other_tps"] == 0 or source != "mosaiq"
    assert {k: scan.summary[k] for k in SUMMARY_KEYS} == summary
    expected = sorted((d["mrn"], d["plan_uid"], d["category"], d["found_in"])
                      for d in in_source if d["category"] != "other_tps")
    found = sorted((f.mrn, f.plan_uid, f.category, f.found_in.split(":", 1)[0]) for f in scan.findings.all())
    assert found == expected  # found_in here is "<group>:<tps_path>"; expected.json names the group
    assert sorted((r.mrn, r.plan_uid) for r in scan.other_tps_records.all()) == sorted(
        (d["mrn"], d["plan_uid"]) for d in in_source if d["category"] == "other_tps")
    assert PendingPlan.objects.filter(status="pending").count() == demo.expected["summary"]["pending"]


def test_the_demo_site_shows_plans_of_other_planning_systems(demo):
    """So that the scan page's tab of other planning systems has rows in the demo."""
    other = [d for d in demo.expected["deliveries"] if d["category"] == "other_tps"]
    assert demo.expected["summary"]["other_tps"] == sum(d["in_window"] for d in other) >= 2
    assert {d["tps"] for d in other} >= {"Monaco", "Eclipse"} and not any(d["in_mosaiq"] for d in other)
