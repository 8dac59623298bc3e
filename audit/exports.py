"""CSV/XLSX export of a filtered table, recorded in the audit log with the patients it held; the files
are written by ``core.exports.SafeTableExport``, so no cell can run as a formula in a spreadsheet."""
from __future__ import annotations

from collections import defaultdict

from django_tables2.export.views import ExportMixin

from core.exports import SafeTableExport
from audit.events import Event
from audit.services import record_event_per_institution


def mrn_set(values) -> set[str]:
    """MRNs from a column of MRNs or of MRN lists (the audit log's own rows), blanks dropped."""
    found: set[str] = set()
    for value in values:
        found.update(value if isinstance(value, list) else [value])
    return {mrn for mrn in found if mrn}


class AuditedExportMixin(ExportMixin):
    """Exports the filtered rows and writes an ``export`` event naming their MRNs.

    ``export_mrn_field`` is the lookup of the MRN (or MRN list) on the listed model; ``audit_institution()``
    the institution code to record. A page that spans institutions sets ``export_institution_field``
    (the lookup of the row's institution code): one event per institution then names that institution's
    patients, so each institution's auditor sees it.
    """

    export_class = SafeTableExport  # every page's export: formula-like text made inert (core.exports)
    export_formats = ("csv", "xlsx")
    export_mrn_field = "mrn"
    export_institution_field: str | None = None

    def is_export(self) -> bool:
        return self.export_class.is_valid_format(self.request.GET.get(self.export_trigger_param))

    def audit_institution(self) -> str:
        return ""

    def _exported_mrns(self, rows) -> dict[str, set[str]]:
        if isinstance(rows, (list, tuple)) or not self.export_mrn_field:  # computed rows (reports) name no patient
            return {}
        if self.export_institution_field is None:
            return {self.audit_institution(): mrn_set(rows.values_list(self.export_mrn_field, flat=True))}
        by_institution: dict[str, set[str]] = defaultdict(set)
        for code, mrns in rows.values_list(self.export_institution_field, self.export_mrn_field):
            by_institution[code or ""] |= mrn_set([mrns])
        return by_institution

    def get(self, request, *args, **kwargs):
        """An export is the filtered rows, not the page: the page's context (its pagination, tab counts
        and figures) is not built for it. Filtered as django-filter's ``FilterView.get`` filters."""
        export_format = request.GET.get(self.export_trigger_param)
        if not self.export_class.is_valid_format(export_format):
            return super().get(request, *args, **kwargs)
        if hasattr(self, "get_filterset_class"):
            self.filterset = filterset = self.get_filterset(self.get_filterset_class())
            valid = not filterset.is_bound or filterset.is_valid() or not self.get_strict()
            self.object_list = filterset.qs if valid else filterset.queryset.none()
        elif hasattr(self, "get_queryset"):
            self.object_list = self.get_queryset()
        return self.create_export(export_format)

    def get_table_pagination(self, table):
        return False if self.is_export() else super().get_table_pagination(table)

    def create_export(self, export_format):
        exporter = self.export_class(export_format=export_format, table=self.get_table(**self.get_table_kwargs()),
                                     exclude_columns=self.exclude_columns, dataset_kwargs=self.get_dataset_kwargs())
        response = exporter.response(filename=self.get_export_filename(export_format))
        rows = self.object_list
        record_event_per_institution(
            actor=self.request.user, event=Event.EXPORT, mrns_by_institution=self._exported_mrns(rows),
            default_institution=self.audit_institution(),
            detail={"page": self.request.path, "format": export_format, "query": self.request.GET.urlencode(),
                    "rows": len(exporter.dataset)})
        return response
