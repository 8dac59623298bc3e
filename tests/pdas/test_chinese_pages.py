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
    "English", "ALPHA", "BETA", "MB", "GB", "KB", "TB", "bytes", "Asia", "Shanghai", "QA", "HL7", "age", "TSV", "MAC",
    "Trial", "PlanID", "FILE", "manage", "UID",  # Pinnacle's own terms, and command syntax shown as it is typed
    "HTTP", "HTTPS", "SSH", "Python", "zstd", "gzip", "Patients",  # protocols, formats, Pinnacle's folder name
    "Object", "Lock",  # S3's "Object Lock", a product feature's name
    "csv", "dicom-dir", "mosaiq", "file", "ssh", "http", "ftp", "sftp", "smb", "mtime",  # URL schemes, as typed
    "Control", "Command", "Mac",  # keyboard keys, in Django's own Chinese
    "scheduler", "system",  # actor values as they are stored (named in a help text)
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


def _admin_pages(world) -> list[str]:  # noqa: F811
    """The admin's index, each registered model's list and add form, and the change form of the world's row."""
    from django.contrib import admin

    pages = [reverse("admin:index")]
    objects = {type(obj): obj for obj in world["objects"].values()}
    for model in admin.site._registry:
        meta = model._meta
        if meta.app_label in THIRD_PARTY_ADMIN:
            continue
        pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        if model in objects:
            pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[objects[model].pk]))
    return pages


# Left as Django writes them: permission names are stored in the database in English when the tables are
# made (no catalogue reaches them), the admin's yes/no icons carry alt="True"/"False", a password hash is
# shown masked ("salt: ypqcTp****").
PERMISSION_LISTS = re.compile(r'<select name="(?:user_)?permissions".*?</select>', re.S)
BOOLEAN_ICON_ALT = {"True", "False", "None"}
UNTRANSLATABLE = BOOLEAN_ICON_ALT
# django-celery-beat's own pages (schedules described in English by cron-descriptor, headers not marked for
# translation): its model names in the admin's index are checked, its pages are not.
THIRD_PARTY_ADMIN = {"django_celery_beat"}
MASKED_HASH = re.compile(r"\w+\*{4,}")


def _schedule_words() -> set[str]:
    """The default beat entries are rows too (their names are how PDAS finds them again): shown as stored."""
    from django_celery_beat.models import PeriodicTask

    return {word for task in PeriodicTask.objects.all() for text in (task.name, task.task) for word in WORD.findall(text)}


def test_no_admin_page_shows_english_in_chinese(world):  # noqa: F811
    """Model names, field labels, list headers and filters of the admin in 简体中文, like the pages."""
    client = clients_of(world)["superuser"]
    client.cookies["django_language"] = "zh-hans"
    allowed = KEEP | _data_words(world) | _identifiers() | UNTRANSLATABLE | _schedule_words()
    problems = {}
    for path in _admin_pages(world):
        response = client.get(path)
        assert response.status_code == 200, path
        html = MASKED_HASH.sub("", PERMISSION_LISTS.sub("", response.content.decode()))
        english = english_on(html, allowed)
        if english:
            problems[path] = english
    assert problems == {}, "\n".join(f"{page}: {texts}" for page, texts in problems.items())


PDAS_APPS = {"audit", "sites", "alerts", "inventory", "lossdetect", "curation", "archiver", "reports"}


def test_every_model_and_field_is_named_for_translation():
    """A new model or field without its own name would show in English (Django makes one from the code name)."""
    from django.apps import apps

    unnamed = []
    for model in apps.get_models():
        meta = model._meta
        if meta.app_label not in PDAS_APPS:
            continue
        unnamed += [f"{meta.label}: Meta.{key}" for key in ("verbose_name", "verbose_name_plural")
                    if key not in meta.original_attrs]
        unnamed += [f"{meta.label}.{field.name}" for field in meta.get_fields()
                    if getattr(field, "concrete", False) and not field.auto_created
                    and "verbose_name" not in field.deconstruct()[3]]
    assert unnamed == []
