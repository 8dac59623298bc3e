"""limit_choices: a user of one institution finds it chosen in every institution filter and form; a user of
several is asked (an empty choice first), and never offered another institution's."""
from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from sites.roles import ARCHIVE_ADMIN, AUDITOR, PHYSICIST
from tests.factories import InstitutionFactory, make_user

pytestmark = pytest.mark.django_db

PAGES = ("archiver:run-list", "archiver:restore", "lossdetect:scan-list", "lossdetect:pending-list",
         "lossdetect:alias-list", "reports:index", "reports:reconcile-list", "audit:log", "curation:index")
SELECT = re.compile(r'<select name="institution"[^>]*>(.*?)</select>', re.S)
OPTION = re.compile(r'<option value="([^"]*)"( selected)?>([^<]*)</option>')


def _institution_selects(client, name: str) -> list[list[tuple[str, bool, str]]]:
    response = client.get(reverse(name))
    assert response.status_code == 200, name
    return [[(value, bool(chosen), text) for value, chosen, text in OPTION.findall(select)]
            for select in SELECT.findall(response.content.decode())]


def test_the_only_institution_is_chosen_already():
    # With an R&V source each, so the "Scan now" form offers them too.
    alpha, beta = (InstitutionFactory(code=code, rv_url="csv:/data/rv.csv") for code in ("ALPHA", "BETA"))
    user = make_user("one", roles=[PHYSICIST, ARCHIVE_ADMIN, AUDITOR], institutions=[alpha])
    client = Client()
    client.force_login(user)
    seen = 0
    for name in PAGES:
        for options in _institution_selects(client, name):
            seen += 1
            assert len(options) == 1, (name, options)
            # One option and no empty one: the browser shows it chosen (marked "selected" or not).
            value, _chosen, text = options[0]
            assert value in (str(alpha.pk), alpha.code) and "ALPHA" in text, (name, options)
            assert beta.code not in text
    assert seen >= len(PAGES) - 1  # every list has its filter (curation chooses by tab links instead)


def test_several_institutions_are_asked_for():
    InstitutionFactory(code="ALPHA"), InstitutionFactory(code="BETA")
    client = Client()
    client.force_login(make_user("head", is_staff=True, is_superuser=True))
    options = _institution_selects(client, "archiver:run-list")[0]
    assert [(value, text) for value, _chosen, text in options][0] == ("", "---------")
    assert len(options) == 3 and not any(chosen for _v, chosen, _t in options[1:])
