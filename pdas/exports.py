"""CSV/XLSX export of a filtered table, recorded in the audit log with the patients it held."""
from __future__ import annotations

from django_tables2.export.views import ExportMixin

from audit.services import record_event


class AuditedExportMixin(ExportMixin):
    """Exports the filtered rows and writes an ``export`` event naming their MRNs.

    ``export_mrn_field`` is the lookup of the MRN on the listed model; ``audit_institution()`` the
    institution code to record (blank when the page spans several).
    """

    export_formats = ("csv", "xlsx")
    export_mrn_field = "mrn"

    def is_export(self) -> bool:
        return self.export_class.is_valid_format(self.request.GET.get(self.export_trigger_param))

    def audit_institution(self) -> str:
        return ""

    def create_export(self, export_format):
        response = super().create_export(export_format)
        rows = self.object_list
        mrns = list(rows.values_list(self.export_mrn_field, flat=True).distinct()) if self.export_mrn_field else []
        count = len(rows) if isinstance(rows, (list, tuple)) else rows.count()  # computed rows (reports) are lists
        record_event(actor=self.request.user, event="export", institution=self.audit_institution(), mrns=mrns,
                     detail={"page": self.request.path, "format": export_format,
                             "query": self.request.GET.urlencode(), "rows": count})
        return response
