"""403, 404 and 500 pages in the site's style and the reader's language."""
from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import translation
from django.views.defaults import server_error

from sites.roles import VIEWER
from tests.factories import InstitutionFactory, make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("language, words", [("en", "Not found"), ("zh-hans", "未找到")])
def test_404_is_a_pdas_page_in_the_readers_language(client, language, words):
    client.force_login(make_user("v404", roles=[VIEWER], institutions=[InstitutionFactory(code="E404")]))
    client.cookies["django_language"] = language
    response = client.get("/no/such/page/")
    body = response.content.decode()
    assert response.status_code == 404 and 'id="error-404"' in body and words in body
    assert "pdas-navbar" in body


@pytest.mark.parametrize("language, words", [("en", "Not allowed"), ("zh-hans", "无权访问")])
def test_403_is_a_pdas_page_in_the_readers_language(client, language, words):
    client.force_login(make_user("v403", roles=[VIEWER], institutions=[InstitutionFactory(code="E403")]))
    client.cookies["django_language"] = language
    response = client.get(reverse("audit:log"))  # viewers may not read the audit log
    body = response.content.decode()
    assert response.status_code == 403 and 'id="error-403"' in body and words in body


def test_500_needs_no_database_and_speaks_chinese(django_assert_num_queries):
    request = RequestFactory().get("/")
    with translation.override("zh-hans"), django_assert_num_queries(0):
        response = server_error(request)
    body = response.content.decode()
    assert response.status_code == 500 and 'id="error-500"' in body and "出错了" in body
