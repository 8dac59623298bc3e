"""Table columns shared by every page's tables.

django-tables2's ``DateTimeColumn`` and ``DateColumn`` are ``TemplateColumn``s: each cell parses and
renders the template ``{{ value|date:"<format>"|default:default }}`` anew, which was a third of the
time of a 100-row page. These give the same text (the ``date`` filter on the value in the active time
zone, the site's) without a template, and are registered so that a model's date fields named in a
table's ``Meta.fields`` get them too. Every ``tables.py`` imports this module before declaring its
tables; importing it also installs ``core.table_signatures``.
"""
from __future__ import annotations

import django_tables2 as tables
from django.template.defaultfilters import date as date_filter
from django.utils.timezone import template_localtime
from django_tables2.columns import library

from core import table_signatures

table_signatures.install()


class _FormattedWithoutTemplate:
    """The text of ``{{ value|date:format|default:default }}``: the date filter asks for the value in the
    current zone (``expects_localtime``), as the template did."""

    formats: tuple[str, str]  # (short, long): the library's defaults when no format is given

    def __init__(self, format=None, short=True, *args, **kwargs):
        super().__init__(format, short, *args, **kwargs)
        self.date_format = format or self.formats[0 if short else 1]

    def render(self, value, bound_column, **kwargs):
        return date_filter(template_localtime(value), self.date_format) or bound_column.default


@library.register
class DateColumn(_FormattedWithoutTemplate, tables.DateColumn):
    """``django_tables2.DateColumn`` (same arguments and export value), rendered without a template."""

    formats = ("SHORT_DATE_FORMAT", "DATE_FORMAT")


# Registered after DateColumn: the library asks the last registered first, and a DateTimeField is a DateField.
@library.register
class DateTimeColumn(_FormattedWithoutTemplate, tables.DateTimeColumn):
    """``django_tables2.DateTimeColumn`` (same arguments and export value), rendered without a template."""

    formats = ("SHORT_DATETIME_FORMAT", "DATETIME_FORMAT")
