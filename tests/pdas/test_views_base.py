from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from archiver.models import ArchiveRun
from audit.models import AuditEvent
from lossdetect.models import LossScan
from pdas import navigation
from sites.models import Membership
from pdas.navigation import NavItem
from tests.factories import InstitutionFactory, LossScanFactory, TpsPatientFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery-42"


@pytest.fixture
def user():
    return User.objects.create_user("physicist", password=PASSWORD, first_name="Li", last_name="Wei")


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/"


def test_login_page_in_english(client):
    body = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<html lang="en">' in body
    assert "Plan data archiving system" in body and "Log in" in body
    assert "nav-link" not in body  # no menu before logging in


def test_login_page_in_simplified_chinese(client):
    body = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert '<html lang="zh-hans">' in body
    assert "计划数据归档系统" in body and "登录" in body and "密码" in body
    assert "Log in" not in body


def test_the_language_switcher_sets_the_language(user_client):
    response = user_client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302

    body = user_client.get(reverse("home")).content.decode()
    assert "机构" in body and "退出" in body


def test_pages_load_assets_only_from_this_server(client):
    body = client.get(reverse("login")).content.decode()

    assets = re.findall(r'<(?:link|script)[^>]+(?:href|src)="([^"]+)"', body)
    assert "/static/vendor/bootstrap/css/bootstrap.min.css" in assets
    assert "/static/vendor/bootstrap/js/bootstrap.bundle.min.js" in assets
    assert all(asset.startswith("/static/") for asset in assets), assets


def test_home_shows_each_institution_of_the_user_with_its_counts(user, user_client):
    pumch = InstitutionFactory(code="PUMCH", name="Radiation Oncology", pending_group="ToArchive")
    TpsPatientFactory.create_batch(3, institution=pumch, group="ToArchive")
    TpsPatientFactory(institution=pumch, group="ToArchive", present=False)  # gone from the TPS
    TpsPatientFactory(institution=pumch, group="Clinical")
    ArchiveRun.objects.create(institution=pumch, requested_by="physicist", status=ArchiveRun.Status.DONE)
    LossScanFactory(institution=pumch, status=LossScan.Status.DONE,
                    summary={"total": 9, "pending": 2, "first_course_lost": 1, "recourse_lost": 0})
    newsite = InstitutionFactory(code="NEWSITE", name="New site")
    InstitutionFactory(code="OTHER", name="Not this user's")
    for institution in (pumch, newsite):
        Membership.objects.create(user=user, institution=institution)

    response = user_client.get(reverse("home"))

    body = response.content.decode()
    cards = {card.institution.code: card for card in response.context["cards"]}
    assert cards["PUMCH"].pending_patients == 3
    assert cards["PUMCH"].last_run.status == "done" and cards["PUMCH"].last_scan.summary["pending"] == 2
    assert cards["NEWSITE"].pending_patients is None  # never read: unknown, not zero
    assert "Radiation Oncology" in body and "New site" in body
    assert "OTHER" not in cards and "Not this user" not in body
    assert re.search(r'<a class="fs-5 pdas-pending-count" href="/curation/\?institution=PUMCH">3</a>', body)
    scan = cards["PUMCH"].last_scan
    assert re.search(rf'<a class="text-danger fw-bold" href="/loss/scan/{scan.pk}/\?tab=first_course_lost">'
                     r'1 first course</a>', body), "a lost count is red and links to its tab"
    assert re.search(rf'<a class="" href="/loss/scan/{scan.pk}/\?tab=recourse_lost">0 re-course</a>', body)
    assert re.search(r'pending: <a href="/loss/pending/">2</a>', body)
    assert "unknown" in body and "none yet" in body


def test_home_costs_the_same_queries_for_one_or_many_institutions(user, user_client,
                                                                  django_assert_max_num_queries):
    def populate(code):
        institution = InstitutionFactory(code=code)
        Membership.objects.create(user=user, institution=institution)
        TpsPatientFactory.create_batch(2, institution=institution)
        ArchiveRun.objects.create(institution=institution, requested_by="x")
        LossScanFactory(institution=institution)

    populate("A")
    with CaptureQueriesContext(connection) as one:
        assert user_client.get(reverse("home")).status_code == 200
    for code in "BCDEFG":
        populate(code)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = user_client.get(reverse("home"))
    assert len(response.context["cards"]) == 7


def test_menu_links_pages_that_exist_and_disables_the_others(user_client, monkeypatch):
    monkeypatch.setattr(navigation, "NAVIGATION", (
        NavItem("Overview", "home"),
        NavItem("Not built yet", "nowhere:page"),
        NavItem("Needs a permission", "home", "inventory.view_archive"),
    ))

    body = user_client.get(reverse("home")).content.decode()

    assert re.search(r'<a class="nav-link active" href="/" aria-current="page">Overview</a>', body)
    assert re.search(r'<span class="nav-link disabled"[^>]*>Not built yet</span>', body)
    assert "Needs a permission" not in body


def test_menu_shows_an_entry_to_users_with_its_permission(user, user_client, monkeypatch):
    monkeypatch.setattr(navigation, "NAVIGATION", (NavItem("Archives", "home", "inventory.view_archive"),))
    user.user_permissions.add(Permission.objects.get(codename="view_archive"))

    assert ">Archives</a>" in user_client.get(reverse("home")).content.decode()


def test_the_real_menu_names_every_area(user_client):
    labels = [str(item.label) for item in navigation.NAVIGATION]

    assert labels == ["Curation", "Archive jobs", "Restore", "Storage", "Loss detection", "Reports", "Audit log",
                      "Pseudonym maps", "Admin"]
    assert "Admin" not in user_client.get(reverse("home")).content.decode()  # staff only


def test_user_name_and_logout_by_post(user_client):
    body = user_client.get(reverse("home")).content.decode()
    assert "Li Wei" in body
    assert re.search(r'<form method="post" action="/accounts/logout/"', body)

    assert user_client.get(reverse("logout")).status_code == 405  # a link cannot log anyone out
    response = user_client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert user_client.get(reverse("home")).status_code == 302


def test_login_logout_and_failed_login_are_audited(client, user):
    client.post(reverse("login"), {"username": "physicist", "password": "wrong-guess-123"})
    client.post(reverse("login"), {"username": "physicist", "password": PASSWORD})
    client.post(reverse("logout"))

    events = list(AuditEvent.objects.order_by("id").values("event", "actor", "outcome", "detail"))
    assert [(e["event"], e["actor"], e["outcome"]) for e in events] == [
        ("auth.login_failed", "anonymous", "denied"),
        ("auth.login", "physicist", "ok"),
        ("auth.logout", "physicist", "ok"),
    ]
    assert events[0]["detail"]["username"] == "physicist"
    assert events[0]["detail"]["ip"] == "127.0.0.1"
    stored = json.dumps(events)
    assert "wrong-guess-123" not in stored and PASSWORD not in stored


def _po_msgids(path) -> list[str]:
    """The msgids of a .po file (enough of the format for our own file: no msgctxt)."""
    msgids, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("msgid "):
            current = [line[len("msgid "):]]
        elif line.startswith('"') and current is not None:
            current.append(line)
        else:
            if current is not None:
                msgids.append("".join(json.loads(part) for part in current))
            current = None
    return [msgid for msgid in msgids if msgid]


def test_every_message_has_a_compiled_chinese_translation():
    import gettext

    from django.conf import settings

    folder = settings.PROJECT_DIR / "locale" / "zh_Hans" / "LC_MESSAGES"
    with (folder / "django.mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)._catalog
    translated = {key[0] if isinstance(key, tuple) else key for key, text in catalog.items() if text}
    msgids = _po_msgids(folder / "django.po")

    assert "Plan data archiving system" in msgids
    assert [msgid for msgid in msgids if msgid not in translated] == []  # .mo is stale or a msgstr is empty


@pytest.mark.parametrize("language, words", [("en", "Nothing here."), ("zh-hans", "暂无内容。")])
def test_an_empty_table_says_so(user, user_client, language, words):
    from sites.roles import VIEWER

    user.groups.add(*Group.objects.filter(name=VIEWER))
    user_client.cookies["django_language"] = language
    body = user_client.get(reverse("archiver:run-list")).content.decode()
    assert '<tr class="pdas-empty">' in body and words in body
