"""Single-row logic of the site's models."""
from __future__ import annotations

import pytest

from sites.models import Institution


@pytest.mark.parametrize(("planning_system", "other"), [
    ("", False),  # names none: classified as usual
    ("   ", False),
    ("Pinnacle3", False),
    ("Philips Pinnacle3", False),
    ("ADAC Pinnacle 3 v9.10", False),
    ("pinnacle", False),  # any case
    ("PHILIPS MEDICAL SYSTEMS", False),
    ("Elekta Monaco", True),
    ("Varian Medical Systems Eclipse", True),
    ("RayStation", True),
])
def test_other_planning_system_by_default(planning_system, other):
    assert Institution().is_other_planning_system(planning_system) is other


def test_other_planning_system_follows_the_institutions_list():
    institution = Institution(planning_systems=["Monaco", " "])
    assert institution.is_other_planning_system("Elekta Monaco 6.1") is False
    assert institution.is_other_planning_system("Philips Pinnacle3") is True
