"""A synthetic Pinnacle site for demos, tests and benchmarks (``manage.py make_demo_site``).

The one writer of Pinnacle trees and R&V data in the project: ``build_demo_site`` writes the whole
site; ``write_patient`` and ``write_institution_file`` build small Pinnacle trees, ``edits`` changes
them afterwards (``edit_file``, ``truncate_file``), and ``rv`` writes R&V data (CSV, MOSAIQ, DICOM)
for tests and benchmarks. See ``build.py`` for the layout and ``scenario.py`` for the cast.
"""
from demo_site.build import DemoSite, DemoSiteError, build_demo_site, parse_size
from demo_site.edits import edit_file, truncate_file
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
    "edit_file",
    "parse_size",
    "truncate_file",
    "write_institution_file",
    "write_patient",
]
