"""site.toml as people save it: a UTF-8 byte-order mark, and the ``planning_systems`` key (docs/contracts.md §6)."""
from __future__ import annotations

import pytest

from sites.models import DEFAULT_PLANNING_SYSTEMS, Institution
from sites.services.site_config import SiteConfigError, institution_problems, load_site_config
from tests.archiver.site_toml import make_site_toml

pytestmark = pytest.mark.django_db


@pytest.fixture
def site_toml(tmp_path, monkeypatch):
    return make_site_toml(tmp_path, monkeypatch)


def test_a_file_saved_with_a_utf8_byte_order_mark_loads(site_toml):
    path = site_toml.write(replace={'name = "Radiation Oncology"': 'name = "放疗科"'})
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # what Windows Notepad writes
    report = load_site_config(path=path)
    assert [change.key for change in report.created] == ["PUMCH", "PUMCH/array-1"]
    assert Institution.objects.get().name == "放疗科"


def test_a_byte_order_mark_inside_the_file_is_still_an_error(site_toml):
    path = site_toml.write()
    path.write_bytes(path.read_bytes() + b"\xef\xbb\xbf")
    with pytest.raises(SiteConfigError, match="TOML syntax error"):
        load_site_config(path=path)


def test_planning_systems_default_and_given(site_toml):
    load_site_config(path=site_toml.write())
    assert Institution.objects.get().planning_systems == list(DEFAULT_PLANNING_SYSTEMS)

    report = load_site_config(path=site_toml.write(replace={"recourse_gap_days = 90": (
        'recourse_gap_days = 90\nplanning_systems = ["Pinnacle", "RayStation"]')}))
    assert [(change.key, change.fields) for change in report.updated] == [("PUMCH", ("planning_systems",))]
    assert Institution.objects.get().planning_systems == ["Pinnacle", "RayStation"]


@pytest.mark.parametrize(("value", "message"), [
    ("[]", "planning_systems: name at least one planning system"),
    ('["Pinnacle", " "]', "planning_systems: holds an empty name, which would match every planning system"),
    ('"Pinnacle"', "planning_systems: must be a list of strings, not a string"),
])
def test_bad_planning_systems_are_refused_naming_the_key(site_toml, value, message):
    path = site_toml.write(replace={"recourse_gap_days = 90": f"recourse_gap_days = 90\nplanning_systems = {value}"})
    with pytest.raises(SiteConfigError, match=message):
        load_site_config(path=path)
    assert not Institution.objects.exists()


def test_the_admins_rules_check_planning_systems_too():
    values = {"code": "X", "tps_url": "file:///data/Patients", "pending_group": "ToArchive"}
    assert institution_problems({**values, "planning_systems": ["Pinnacle"]}, check_local=False) == []
    assert institution_problems({**values, "planning_systems": [3]}, check_local=False) == [
        ("planning_systems", 'must be a list of strings, as in ["Clinical"]')]
