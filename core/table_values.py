"""A table's cells as django-tables2 reads them (``Table.as_values`` for exports, ``BoundRow.get_cell`` for
pages), at a fraction of its cost.

For every cell the library finds the column by scanning all columns, builds two accessors, resolves the
record's path twice, asks the model for the column's field to see whether it has choices, and then lets
Django's ``get_FOO_display`` rebuild the whole choices dictionary and translate every label again. Under
load (bench/load.py) exports were one request in twenty but 40 % of the web workers' time, most of it
there: the runs list's CSV (1,828 runs, 11 columns) spent 0.45 s of 0.75 s in ``as_values``; a page's
100 rows spent a third of the page's time there.

``ColumnReader`` does per cell what the library does, in the same order, and works out once per table
what depends only on the column or on the class of the record: the accessors, whether the column shows
a choice's label, the labels themselves (in the language of the request, as the library's would be) and
the arguments the column's value and render methods take. ``export_values`` is ``as_values`` with it;
``pdas_tables.table_rows`` renders the page's cells with it. tests/core/test_table_values.py compares
both with the library's, and tests/audit/test_exports.py every page's export file.
"""
from __future__ import annotations

from functools import partialmethod
from inspect import getattr_static
from typing import Any, Iterator

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.encoding import force_str
from django.utils.hashable import make_hashable
from django_tables2.columns.linkcolumn import BaseLinkColumn
from django_tables2.columns.manytomanycolumn import ManyToManyColumn
from django_tables2.utils import Accessor

from core.table_signatures import signature

_CELL_ARGUMENTS = frozenset(("value", "record", "column", "bound_column", "bound_row", "table"))
_NEVER = object()  # a method that names an argument no cell has: the library does not call it
_EMPTY = object()  # the cell's value is one of the column's empty values


def _arguments(method) -> tuple[str, ...] | None | object:
    """The cell arguments ``method`` is given: their names, None for all (a ``**`` catch-all), or _NEVER."""
    names, catch_all = signature(method)
    if catch_all:
        return None
    return names if _CELL_ARGUMENTS.issuperset(names) else _NEVER


def _call(method, names, arguments: dict[str, Any]) -> Any:
    """``django_tables2.utils.call_with_appropriate(method, arguments)`` with the names worked out once."""
    if names is _NEVER:
        return None
    if names is not None:
        arguments = {name: arguments[name] for name in names}
    return method(**arguments)


def export_values(table, exclude_columns=()) -> Iterator[list[Any]]:
    """``table.as_values(exclude_columns)``: the headers, then one list of values per row."""
    columns = [column for column in table.columns.iterall()
               if not (column.column.exclude_from_export or column.name in exclude_columns)]
    yield [force_str(column.header, strings_only=True) for column in columns]
    readers = [ColumnReader(column) for column in columns]
    for row in table.rows:
        yield [force_str(reader.value(row), strings_only=True) for reader in readers]


class ColumnReader:
    """One column's cells, read as ``BoundRow.get_cell_value`` (``value``: for exports) and
    ``BoundRow.get_cell`` (``cell``: the page's rendered cell, linked where the column links) read them."""

    def __init__(self, bound_column):
        column = bound_column.column
        self.bound_column, self.column, self.table = bound_column, column, bound_column._table
        self.accessor = Accessor(bound_column.accessor)
        path, _, self.remainder = self.accessor.rpartition(self.accessor.SEPARATOR)
        self.path = Accessor(path)
        self.empty_values = column.empty_values
        self.many = isinstance(column, ManyToManyColumn)
        self.link_text = isinstance(column, BaseLinkColumn) and column.text is not None
        self.link = bound_column.link
        self.value_method, self.value_arguments = bound_column.value, _arguments(bound_column.value)
        self.render_method, self.render_arguments = bound_column.render, _arguments(bound_column.render)
        self.labels: dict[tuple[type, type], Any] = {}  # (record's class, penultimate's class) -> how to label

    def value(self, row) -> Any:
        found = self._read(row, self._value)
        return None if found is _EMPTY else found

    def cell(self, row) -> Any:
        found = self._read(row, self._render)
        return self.bound_column.default if found is _EMPTY else found

    def _read(self, row, call) -> Any:
        """``BoundRow._get_and_render_with``: the value at the accessor (a choice's label where the field has
        choices), then ``_EMPTY`` for an empty value, else ``call(row, value)``."""
        record = row.record
        value: Any = None
        remainder = self.remainder
        penultimate = self.path.resolve(record, quiet=True)
        if isinstance(penultimate, models.Model):
            label = self._labeller(record, penultimate)
            if label is not None:
                value, remainder = label(penultimate), None
        if remainder:
            try:
                value = self.accessor.resolve(record)
            except Exception:  # a column that is not a field (the library's own rule, its issue #257)
                if self.link_text:
                    return call(row, None)
        if value in self.empty_values or (self.many and not value.exists()):
            return _EMPTY
        return call(row, value)

    def _arguments_of(self, row, value) -> dict[str, Any]:
        return {"value": value, "record": row.record, "column": self.column, "bound_column": self.bound_column,
                "bound_row": row, "table": self.table}

    def _value(self, row, value) -> Any:
        return _call(self.value_method, self.value_arguments, self._arguments_of(row, value))

    def _render(self, row, value) -> Any:
        arguments = self._arguments_of(row, value)
        content = _call(self.render_method, self.render_arguments, arguments)
        return self.link(content, **arguments) if self.link else content

    def _labeller(self, record, penultimate):
        """None when the column shows the value itself; else a function of the penultimate object giving
        the label of its choice, as its ``get_<field>_display()`` does."""
        key = (type(record), type(penultimate))
        if key not in self.labels:
            self.labels[key] = self._find_labeller(record, penultimate)
        return self.labels[key]

    def _find_labeller(self, record, penultimate):
        try:
            field = self.accessor.get_field(record)
        except FieldDoesNotExist:
            return None
        method_name = f"get_{self.remainder}_display"
        if not (getattr(field, "choices", ()) and getattr(penultimate, method_name, None)):
            return None
        method = getattr_static(type(penultimate), method_name, None)
        generated = (isinstance(method, partialmethod) and method.func is models.Model._get_FIELD_display
                     and not method.args and set(method.keywords) == {"field"})
        if not generated:  # a model's own get_FOO_display: asked per cell, as the library does
            return lambda obj: getattr(obj, method_name)()
        # Django's generated method rebuilds this dictionary and translates its labels at every call.
        own_field = method.keywords["field"]
        labels = {make_hashable(key): force_str(label, strings_only=True) for key, label in own_field.flatchoices}
        attname = own_field.attname

        def label(obj):
            value = getattr(obj, attname)
            return force_str(labels.get(make_hashable(value), value), strings_only=True)

        return label
