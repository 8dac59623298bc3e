"""Curation of a generated demo site agrees with the site's own expectations (two independent sources)."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from demo_site import build_demo_site

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("seed", [1, 5])
def test_curate_matches_expected_json(tmp_path, seed):
    site = build_demo_site(tmp_path / "demo", patients=36, seed=seed, image_bytes=3_000_000)
    call_command("load_site_config", str(site.site_toml), stdout=StringIO())
    out = StringIO()
    try:
        call_command("curate", "--institution", "DEMO", "--json", stdout=out)
    except SystemExit as exc:
        assert exc.code == 1  # the cast has findings for a person
    found = {(p["tps_path"], p["category"]) for p in json.loads(out.getvalue())["patients"]}
    expected = {(row["tps_path"], row["category"]) for row in site.expected["curation"]}
    assert found == expected, {"missing": sorted(expected - found), "unexpected": sorted(found - expected)}
