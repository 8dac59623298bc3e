"""A synthetic Pinnacle site for demos, tests and benchmarks (``manage.py make_demo_site``).

``build_demo_site`` writes the whole site; ``write_patient`` and ``write_institution_file`` build
small Pinnacle trees for tests. See ``build.py`` for the layout and ``scenario.py`` for the cast.
"""
from demo_site.build import DemoSite, DemoSiteError, build_demo_site, parse_size
from demo_site.tree import (
    GroupSpec,
    ImageSetSpec,
    PatientRecord,
    PlanSpec,
    write_institution_file,
    write_patient,
)

__all__ = [
    "DemoSite",
    "DemoSiteError",
    "GroupSpec",
    "ImageSetSpec",
    "PatientRecord",
    "PlanSpec",
    "build_demo_site",
    "parse_size",
    "write_institution_file",
    "write_patient",
]
