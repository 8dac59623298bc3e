"""pdas_tables.table_rows writes the HTML django-tables2's template loop wrote: the same rows, cells, attributes
(static, per column, and computed per record), escaping, localisation and the site's times."""
from __future__ import annotations

import datetime as dt
import re

import django_tables2 as tables
import pytest
from django.template import engines
from django.test import RequestFactory
from django.utils import timezone, translation
from django.utils.html import format_html

from core.columns import DateTimeColumn

# The tbody of includes/table.html before table_rows: the reference the tag must match.
TEMPLATE_LOOP = """{% extends "django_tables2/bootstrap5.html" %}{% load i18n l10n %}
{% block table.tbody %}
<tbody {{ table.attrs.tbody.as_html }}>
{% for row in table.paginated_rows %}
    <tr {{ row.attrs.as_html }}>
        {% for column, cell in row.items %}
            <td data-column="{{ column.name }}" {{ column.attrs.td.as_html }}>{% if column.localize == None %}{{ cell }}{% else %}{% if column.localize %}{{ cell|localize }}{% else %}{{ cell|unlocalize }}{% endif %}{% endif %}</td>
        {% endfor %}
    </tr>
{% empty %}
    <tr class="pdas-empty"><td colspan="{{ table.columns|length }}" class="text-body-secondary">{% if table.empty_text %}{{ table.empty_text }}{% else %}{% translate "Nothing here." %}{% endif %}</td></tr>
{% endfor %}
</tbody>
{% endblock table.tbody %}
"""


class Mixed(tables.Table):
    name = tables.Column(attrs={"td": {"class": "text-break"}})
    marked = tables.Column(accessor="name", attrs={"td": {"class": lambda record: f"r-{record['n']}"}},
                           verbose_name="Marked")
    n = tables.Column(localize=True)
    raw = tables.Column(accessor="n", localize=False, verbose_name="Raw")
    at = DateTimeColumn(format="Y-m-d H:i")
    when = tables.Column(accessor="at", verbose_name="When")  # a bare datetime: the template's localtime
    badge = tables.Column(accessor="name", verbose_name="Badge")
    nothing = tables.Column(default="—")

    class Meta:
        attrs = {"class": "table", "td": {"data-x": "1"}}
        row_attrs = {"data-n": lambda record: record["n"]}

    def render_badge(self, value):
        return format_html('<span class="badge">{}</span>', value)


ROWS = [
    {"name": "<script>alert(1)</script> & Co", "n": 1234567, "at": dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone.utc),
     "nothing": None},
    {"name": "张三", "n": 2, "at": None, "nothing": "x"},
]


def tbody(template_code: str, rows) -> str:
    """The table's tbody rendered by ``template_code``, whitespace between tags dropped."""
    html = engines["django"].from_string(template_code).render({"table": Mixed(rows), "request": RequestFactory().get("/")})
    return re.sub(r">\s+<", "><", html[html.index("<tbody"):html.index("</tbody>")]).strip()


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC"])
@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize("rows", [ROWS, []], ids=["rows", "empty"])
def test_same_html_as_the_template_loop(settings, zone, language, rows):
    settings.USE_THOUSAND_SEPARATOR = False
    with timezone.override(zone), translation.override(language):
        reference = tbody(TEMPLATE_LOOP, rows)
        assert tbody('{% extends "includes/table.html" %}', rows) == reference
    if rows:
        assert "&lt;script&gt;" in reference and "<script>" not in reference
        assert 'class="r-2"' in reference and 'class="r-1234567"' in reference and 'data-n="2"' in reference

