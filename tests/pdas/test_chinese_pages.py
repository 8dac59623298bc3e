"""Every page in 简体中文 shows no English sentence: a visible string missing from the catalogue (a
table header, a filter label, a status word, a default reason) is caught here.

Each page of the access table is rendered in zh-hans for a superuser over the access world (one row of
every model). Visible text (text nodes, titles, placeholders, labels, option texts) is searched for
English words; the data the world put there (codes, MRNs, file names, names) and the technical words
that stay as they are in Chinese (CSV, MRN, TPS, SHA-256, ...) are allowed.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from tests.access_world import clients_of, world  # noqa: F401 - the fixture
from tests.pdas.test_access import TABLE, _path_kwargs, all_url_patterns

pytestmark = pytest.mark.django_db

# Words that are the same in the Chinese interface: product, format and protocol names, units, codes.
KEEP = {
    "PDAS", "CSV", "XLSX", "MRN", "TPS", "R&V", "RV", "SHA", "UTC", "Pinnacle", "Pinnacle3", "MOSAIQ", "DICOM", "RT",
    "Monaco", "Eclipse", "RayStation", "ADAC", "Philips", "JSON", "ID", "URL", "SFTP", "FTPS", "FTP", "SMB", "S3",
    "English", "ALPHA", "BETA", "MB", "GB", "KB", "TB", "bytes", "Asia", "Shanghai", "QA", "HL7", "age", "TSV",
    "Trial", "PlanID", "FILE", "manage", "UID",  # Pinnacle's own terms, and command syntax shown as it is typed
}
# An English word: letters standing alone (not part of a file name, a path or an identifier like Plan_0).
WORD = re.compile(r"(?<![\w./])[A-Za-z][A-Za-z'’-]{2,}(?![\w/])")
SKIP_TAGS = {"script", "style"}
ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}


class _Visible(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIP_TAGS:
            self._skip += 1
        self.texts += [value for name, value in attrs if name in ATTRIBUTES and value]

    def handle_endtag(self, tag):
        if tag in SKIP_TAGS and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(data.strip())


def _data_words(world) -> set[str]:
    """Words that come from the rows the world created (names, file names, paths, labels)."""
    words: set[str] = set()
    for obj in world["objects"].values():
        for field in obj._meta.concrete_fields:
            value = getattr(obj, field.attname, None)
            if isinstance(value, str):
                words.update(WORD.findall(value))
    for user in world["users"].values():
        words.update(WORD.findall(user.username))
    return words


def _identifiers() -> set[str]:
    """The audit log shows event keywords, object types and JSON details as they are stored: identifiers."""
    from django.apps import apps

    from audit.events import Event

    words = {part for event in Event for part in re.split(r"[._]", event.value)}
    return words | {model.__name__ for model in apps.get_models()}


def english_on(html: str, allowed: set[str]) -> list[str]:
    parser = _Visible()
    parser.feed(html)
    found = []
    for text in parser.texts:
        if text.startswith(("{", "[")):
            continue  # a stored JSON detail, shown as stored
        words = [w for w in WORD.findall(text) if w not in allowed and w.strip("'’-") not in allowed]
        if words:
            found.append(text[:120])
    return found


def test_no_page_shows_english_in_chinese(world):  # noqa: F811
    client = clients_of(world)["superuser"]
    client.cookies["django_language"] = "zh-hans"
    allowed = KEEP | _data_words(world) | _identifiers()
    problems = {}
    for name, route, _pattern in all_url_patterns():
        if not name or name not in TABLE or TABLE[name][0] != "get" or route.endswith(".json"):
            continue
        response = client.get(reverse(name, kwargs=_path_kwargs(name, route, world)))
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue
        english = english_on(response.content.decode(), allowed)
        if english:
            problems[name] = english
    assert problems == {}, "\n".join(f"{page}: {texts}" for page, texts in problems.items())
