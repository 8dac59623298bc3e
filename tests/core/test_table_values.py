"""core.table_values gives what django-tables2's Table.as_values (exports) and BoundRow.get_cell (pages) give, cell for cell, in every
case the library's cell reading distinguishes: a choice's label (Django's generated get_FOO_display, and a
model's own), a path across a relation that is null, a dictionary row, a column that is no field, a link
column's text, a many-to-many column, value methods taking some, all or an unknown argument, and defaults.
Every page's export is compared with the library's in tests/audit/test_exports.py."""
from __future__ import annotations

import django_tables2 as tables
import pytest
from django.contrib.auth.models import Group, User
from django.utils import translation

from archiver.models import PatientArchiveTask, RestoreRecord
from core.table_values import ColumnReader, export_values
from tests.factories import ArchiveFactory, InstitutionFactory, TpsPatientFactory
from tests.reports.factories import ArchiveRunFactory, PatientArchiveTaskFactory

pytestmark = pytest.mark.django_db


class TaskTable(tables.Table):
    result = tables.Column()  # a choice: its label
    step = tables.Column(verbose_name="Step")
    status = tables.Column(accessor="run__status")  # a choice across a relation
    mrn = tables.Column(accessor="patient__mrn")
    archive = tables.Column(accessor="archive__name", default="none")  # a null relation
    archive_status = tables.Column(accessor="archive__status")  # a choice across a null relation
    institution = tables.Column(accessor="run__institution__code")
    missing = tables.Column(accessor="no_such_attribute", default="?")  # not a field
    link = tables.LinkColumn("archiver:run-detail", args=[tables.A("run_id")], text="open", accessor="nothing_here")
    bytes_done = tables.Column()
    summed = tables.Column(accessor="bytes_total", empty_values=())
    unknown = tables.Column(accessor="reason")
    empty = tables.Column(accessor="reason", empty_values=("",), default="—")
    run_code = tables.Column(accessor="run", exclude_from_export=True)

    def value_bytes_done(self, value, record):
        return f"{value}/{record.bytes_total}"

    def value_summed(self, **kwargs):
        return sorted(kwargs)

    def value_unknown(self, value, nonsense):  # names an argument no cell has: the library gives None
        return value

    def render_step(self, value):
        return f"<b>{value}</b>"


class RestoreTable(tables.Table):
    status = tables.Column()
    mrn = tables.Column(accessor="archive__mrn")


class DictTable(tables.Table):
    a = tables.Column()
    b = tables.Column(accessor="c__d", default="x")
    e = tables.Column(accessor="missing", default="gone")


class UserTable(tables.Table):
    username = tables.Column()
    groups = tables.ManyToManyColumn()
    joined = tables.DateTimeColumn(accessor="date_joined", format="Y-m-d")


def _cells(table):
    """Each row's rendered cells: (ours, the library's BoundRow.get_cell)."""
    readers = [ColumnReader(column) for column in table.columns]
    return ([[str(reader.cell(row)) for reader in readers] for row in table.rows],
            [[str(row.get_cell(column.name)) for column in table.columns] for row in table.rows])


def _both(table_class, rows, **kwargs):
    return list(export_values(table_class(rows), **kwargs)), list(table_class(rows).as_values(**kwargs))


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_model_rows_as_the_library_reads_them(language):
    run = ArchiveRunFactory(institution=InstitutionFactory(code="ALPHA"), status="done")
    archive = ArchiveFactory(institution=run.institution, status="verified")
    PatientArchiveTaskFactory(run=run, patient=TpsPatientFactory(institution=run.institution, mrn="001"),
                              archive=archive, result=PatientArchiveTask.Result.PASS, bytes_done=5, bytes_total=9,
                              reason="")
    PatientArchiveTaskFactory(run=run, patient=TpsPatientFactory(institution=run.institution, mrn="002"),
                              archive=None, result=PatientArchiveTask.Result.ERROR, bytes_done=0, bytes_total=0,
                              reason="disk full")
    rows = PatientArchiveTask.objects.select_related("run__institution", "patient", "archive").order_by("id")
    with translation.override(language):
        ours, library = _both(TaskTable, rows)
        assert ours == library
        cells, library_cells = _cells(TaskTable(rows))
        assert cells == library_cells and "<b>" in cells[0][1] and 'href="/archive/runs/' in cells[0][8]
        assert len(ours) == 3 and "run_code" not in str(ours[0])
        labels = {str(PatientArchiveTask.Result.PASS.label), str(PatientArchiveTask.Result.ERROR.label)}
        assert {row[0] for row in ours[1:]} == labels  # the result column: labels, not stored values
        assert list(export_values(TaskTable(rows), exclude_columns=("mrn",))) == list(
            TaskTable(rows).as_values(exclude_columns=("mrn",)))


def test_a_models_own_label_method_is_asked(monkeypatch):
    monkeypatch.setattr(RestoreRecord, "get_status_display", lambda self: f"own {self.status}")
    archive = ArchiveFactory()
    RestoreRecord.objects.create(institution=archive.institution, archive=archive, destination="/x", status="queued")
    rows = RestoreRecord.objects.select_related("archive")
    ours, library = _both(RestoreTable, rows)
    assert ours == library and ours[1][0] == "own queued"
    assert _cells(RestoreTable(rows))[0] == _cells(RestoreTable(rows))[1]


def test_dictionary_rows():
    rows = [{"a": 1, "c": {"d": "deep"}}, {"a": None, "c": None}, {"a": "", "c__d": "flat"}]
    ours, library = _both(DictTable, rows)
    assert ours == library
    cells, library_cells = _cells(DictTable(rows))
    assert cells == library_cells and cells[1][2] == "gone"


def test_many_to_many_and_date_columns():
    group = Group.objects.create(name="physicists")
    User.objects.create(username="a").groups.add(group)
    User.objects.create(username="b")
    ours, library = _both(UserTable, User.objects.order_by("username"))
    assert ours == library and ours[1][1] == "physicists"
    cells, library_cells = _cells(UserTable(User.objects.order_by("username")))
    assert cells == library_cells and cells[1][1] == "—"


def test_no_rows():
    ours, library = _both(TaskTable, PatientArchiveTask.objects.none())
    assert ours == library and len(ours) == 1
