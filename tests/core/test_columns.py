"""core.columns: the date columns give the text django-tables2's template columns gave (the date filter in
the active zone, the column's default for nothing), and model date fields in Meta.fields get them."""
from __future__ import annotations

import datetime as dt

import django_tables2 as tables
import pytest
from django.db import models
from django.utils import timezone, translation

from core.columns import DateColumn, DateTimeColumn

AWARE = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone.utc)  # 2026-03-02 07:30 in Shanghai


class Row(models.Model):
    at = models.DateTimeField(null=True)
    day = models.DateField(null=True)

    class Meta:
        app_label = "core"
        managed = False


class Template(tables.Table):
    at = tables.DateTimeColumn(format="Y-m-d H:i", default="—")
    day = tables.DateColumn(format="Y-m-d", default="—")
    short = tables.DateTimeColumn(accessor="at", default="—")


class Direct(tables.Table):
    at = DateTimeColumn(format="Y-m-d H:i", default="—")
    day = DateColumn(format="Y-m-d", default="—")
    short = DateTimeColumn(accessor="at", default="—")


class FromFields(tables.Table):
    class Meta:
        model = Row
        fields = ("at", "day")


def cells(table_class, rows) -> list[list[str]]:
    return [[str(cell) for cell in row] for row in table_class(rows).rows]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC", "America/Chicago"])
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_same_text_as_the_template_columns(zone, language):
    rows = [{"at": AWARE, "day": dt.date(2026, 3, 2)}, {"at": None, "day": None}]
    with timezone.override(zone), translation.override(language):
        assert cells(Direct, rows) == cells(Template, rows)
        assert cells(Direct, rows)[0][0] == timezone.localtime(AWARE).strftime("%Y-%m-%d %H:%M")
        assert cells(Direct, rows)[1] == ["—", "—", "—"]


def test_model_date_fields_get_the_columns_without_a_template():
    assert type(FromFields.base_columns["at"]) is DateTimeColumn
    assert type(FromFields.base_columns["day"]) is DateColumn


def test_exports_keep_the_iso_value():
    table = Direct([{"at": AWARE, "day": dt.date(2026, 3, 2)}])
    row = next(iter(table.as_values(exclude_columns=())))  # the header row
    assert row == ["At", "Day", "Short"]
    assert list(table.as_values())[1][:2] == [AWARE.isoformat(sep=" "), "2026-03-02"]
