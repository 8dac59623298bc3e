"""The body rows of every table (``includes/table.html``), written in Python.

django-tables2's template renders each cell through the template engine: a loop step, the column's
attributes (header, cell and footer attributes computed anew for every cell), the localisation
branches. For a 100-row page that was most of the page's time. ``table_rows`` writes the same HTML:
``<tr {row attrs}>`` then ``<td data-column="{name}" {td attrs}>{cell}</td>`` per column, each cell
output as ``{{ cell }}`` (or ``|localize`` / ``|unlocalize``) would be. A column's cell attributes are
computed once per table unless they hold a callable, which is then called for each record, as
django-tables2 does. Cells are read by ``core.table_values.ColumnReader``, which does what
``BoundRow.get_cell`` does with each column's fixed work done once per table.
"""
from __future__ import annotations

from django import template
from django.template.base import render_value_in_context
from django.templatetags.l10n import localize, unlocalize
from django.utils.html import escape
from django.utils.safestring import mark_safe

from core.table_values import ColumnReader

register = template.Library()


def _has_callable(value) -> bool:
    if callable(value):
        return True
    return isinstance(value, dict) and any(_has_callable(v) for v in value.values())


def _cell_attrs_vary(bound_column) -> bool:
    """Whether the cell attributes depend on the record (a callable in the table's or column's attrs)."""
    return _has_callable(dict(bound_column._table.attrs)) or _has_callable(dict(bound_column.column.attrs))


def _cell_text(context, bound_column, cell) -> str:
    if bound_column.localize is None:
        return render_value_in_context(cell, context)
    return render_value_in_context(localize(cell) if bound_column.localize else unlocalize(cell), context)


@register.simple_tag(takes_context=True)
def table_rows(context, table) -> str:
    """The ``<tr>`` of the page's rows (nothing when there are none)."""
    rows = list(table.paginated_rows)
    if not rows:
        return ""
    columns = list(table.columns)
    readers = [(column, ColumnReader(column)) for column in columns]
    names = {column.name: escape(column.name) for column in columns}
    fixed = {column.name: column.attrs["td"].as_html() for column in columns if not _cell_attrs_vary(column)}
    lines = []
    for row in rows:
        # Plain string formatting of parts that are escaped already (attributes by AttributeDict.as_html,
        # cells as the template would): format_html per cell cost a fifth of the rows' time.
        cells = []
        for column, reader in readers:
            # What BoundRow.items() sets: a column's attributes computed per record read them.
            column.current_value = cell = reader.cell(row)
            column.current_record = row.record
            cells.append('<td data-column="%s" %s>%s</td>' % (
                names[column.name], fixed[column.name] if column.name in fixed else column.attrs["td"].as_html(),
                _cell_text(context, column, cell)))
        lines.append(f"<tr {row.attrs.as_html()}>{''.join(cells)}</tr>")
    return mark_safe("\n".join(lines))
