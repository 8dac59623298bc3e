"""django-tables2 asks ``inspect.signature`` of a column's render/value method for every cell.

``django_tables2.utils.call_with_appropriate`` passes each render or value method only the arguments
it names, and reads the names anew for every cell: 40 % of an export's time (20,000 cells of the runs
list took 2 s of 5 s under the profiler) and a large share of a page's. ``install()`` puts in a
``django_tables2.utils.signature`` that answers from a cache, keyed by the function (a bound method
is a new object at every access: its function is the key and its first argument, ``self`` or ``cls``,
is dropped, as ``inspect.signature`` of the bound method does). The answers are the library's own.
``core.columns``, imported by every ``tables.py``, installs it.
"""
from __future__ import annotations

import functools

from django_tables2 import utils

_library_signature = utils.signature


@functools.lru_cache(maxsize=2048)
def _signature_of(function) -> tuple[tuple[str, ...], str | None]:
    return _library_signature(function)


def signature(fn) -> tuple[tuple[str, ...], str | None]:
    """``django_tables2.utils.signature(fn)``: (the argument names, the name of the ``**`` catch-all)."""
    function, bound_to = getattr(fn, "__func__", None), getattr(fn, "__self__", None)
    try:
        if function is not None and bound_to is not None:
            names, catch_all = _signature_of(function)
            return names[1:], catch_all
        return _signature_of(fn)
    except TypeError:  # an unhashable callable: asked each time, as the library does
        return _library_signature(fn)


def install() -> None:
    utils.signature = signature
