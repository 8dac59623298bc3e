"""core.table_signatures: the cached signature answers what django-tables2's own does, for every kind of
callable a table hands it, and is installed once core.columns is imported."""
from __future__ import annotations

import functools

import pytest
from django_tables2 import utils

import core.columns  # noqa: F401  (installs it)
from core import table_signatures


class Table:
    def render_x(self, value, record):
        return value

    def value_y(self, **kwargs):
        return kwargs

    def star(self, *args, bound_column, **rest):
        return args

    @classmethod
    def made(cls, table, value):
        return value

    @staticmethod
    def plain(record):
        return record


class Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, value, table=None):
        return value


def free(record, value=None, *args, **kwargs):
    return record


CALLABLES = {
    "bound method": Table().render_x, "bound catch-all": Table().value_y, "bound *args": Table().star,
    "classmethod": Table.made, "classmethod via instance": Table().made, "staticmethod": Table().plain,
    "function": free, "lambda": lambda record: record, "partial": functools.partial(free, value=1),
    "unhashable": Unhashable(), "unbound method": Table.render_x,
}


@pytest.mark.parametrize("name", CALLABLES)
def test_answers_as_the_library_does(name):
    fn = CALLABLES[name]
    assert table_signatures.signature(fn) == table_signatures._library_signature(fn)
    assert table_signatures.signature(fn) == table_signatures.signature(fn)  # and again, from the cache


def test_bound_methods_of_two_tables_share_one_entry():
    table_signatures._signature_of.cache_clear()
    for _ in range(3):
        table_signatures.signature(Table().render_x)
    assert table_signatures._signature_of.cache_info().currsize == 1


def test_installed():
    assert utils.signature is table_signatures.signature
    assert utils.call_with_appropriate(Table().render_x, {"value": 1, "record": 2, "table": 3}) == 1
