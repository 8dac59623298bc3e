"""Number formats of the report pages: an unknown figure (None) is a dash, never a zero."""
from __future__ import annotations

from django import template

register = template.Library()
UNKNOWN = "—"


@register.filter
def gigabytes(num_bytes: int | None) -> str:
    return UNKNOWN if num_bytes is None else f"{num_bytes / 1e9:,.2f} GB"


@register.filter
def number(value: float | None, digits: int = 0) -> str:
    return UNKNOWN if value is None else f"{value:,.{int(digits)}f}"


@register.filter
def percent(value: float | None, digits: int = 2) -> str:
    return UNKNOWN if value is None else f"{100 * value:,.{int(digits)}f} %"
