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

    def create_export(self, export_format):
        response = super().create_export(export_format)
        rows = self.object_list
        count = len(rows) if isinstance(rows, (list, tuple)) else rows.count()
        record_event_per_institution(
            actor=self.request.user, event=Event.EXPORT, mrns_by_institution=self._exported_mrns(rows),
            default_institution=self.audit_institution(),
            detail={"page": self.request.path, "format": export_format, "query": self.request.GET.urlencode(),
                    "rows": count})
        return response
