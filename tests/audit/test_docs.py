"""docs/audit.md lists every event kind of ``audit.events.Event``, and nothing else; the code writes only members."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from audit.events import Event

BASE = Path(settings.BASE_DIR)
APPS = ("core", "audit", "sites", "inventory", "lossdetect", "curation", "archiver", "reports", "demo_site", "pdas")


def keywords_in_docs(text: str | None = None) -> set[str]:
    text = text if text is not None else (BASE / "docs" / "audit.md").read_text(encoding="utf-8")
    table = text.split("## Every event keyword", 1)[1]
    return set(re.findall(r"^\| `([a-z_.]+)` \|", table, flags=re.MULTILINE))


def undocumented_and_invented(documented: set[str]) -> tuple[set[str], set[str]]:
    """(members missing from the docs, documented keywords that are no member)."""
    members = {kind.value for kind in Event}
    return members - documented, documented - members


def test_every_event_kind_is_documented_and_none_invented():
    documented = keywords_in_docs()

    assert {"auth.login", "patient.view", "originals.remove", "audit.verify"} <= documented  # the search works
    assert undocumented_and_invented(documented) == (set(), set())


def test_a_kind_missing_from_the_docs_or_invented_there_is_caught():
    text = (BASE / "docs" / "audit.md").read_text(encoding="utf-8")
    without_purge = "\n".join(line for line in text.splitlines() if not line.startswith("| `quarantine.purge` |"))
    with_typo = text.replace("| `originals.remove` |", "| `original.remove` |")

    assert undocumented_and_invented(keywords_in_docs(without_purge)) == ({"quarantine.purge"}, set())
    assert undocumented_and_invented(keywords_in_docs(with_typo)) == ({"originals.remove"}, {"original.remove"})


def test_the_code_names_event_kinds_by_member_not_by_string():
    literals = []
    for app in APPS:
        for path in (BASE / app).rglob("*.py"):
            for match in re.finditer(r"\bevent=[\"']([a-z_.]+)[\"']", path.read_text(encoding="utf-8")):
                literals.append(f"{path.relative_to(BASE)}: {match.group(0)}")
    assert literals == []


def test_record_event_refuses_an_unknown_kind_and_writes_nothing(db):
    from audit.events import UnknownEvent
    from audit.models import AuditEvent
    from audit.services import record_event

    with pytest.raises(UnknownEvent, match="unknown audit event kind 'originals.removed'"):
        record_event(actor="t", event="originals.removed")
    assert not AuditEvent.objects.exists()
    row = record_event(actor="t", event="originals.remove")  # the exact keyword is the member
    assert row.event == Event.ORIGINALS_REMOVE and type(AuditEvent.objects.get().event) is str
