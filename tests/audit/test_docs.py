"""docs/audit.md lists every event keyword the code writes."""
from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

BASE = Path(settings.BASE_DIR)
APPS = ("core", "audit", "sites", "inventory", "lossdetect", "curation", "archiver", "reports", "demo_site", "pdas")


def keywords_in_code() -> set[str]:
    found = set()
    for app in APPS:
        for path in (BASE / app).rglob("*.py"):
            found |= set(re.findall(r'\bevent="([a-z_.]+)"', path.read_text(encoding="utf-8")))
    return found


def keywords_in_docs() -> set[str]:
    text = (BASE / "docs" / "audit.md").read_text(encoding="utf-8").split("## Every event keyword", 1)[1]
    return set(re.findall(r"^\| `([a-z_.]+)` \|", text, flags=re.MULTILINE))


def test_every_keyword_written_is_documented_and_none_invented():
    in_code = keywords_in_code()

    assert {"auth.login", "patient.view", "originals.remove", "audit.verify"} <= in_code  # the search works
    assert in_code - keywords_in_docs() == set()
    assert keywords_in_docs() - in_code == set()
