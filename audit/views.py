"""The auditor's page: search the audit log, read it, export it (CSV/XLSX). Reading it is itself audited
(``audit.view``, naming the MRNs shown, per institution), and so is every export (``export``)."""
from __future__ import annotations

from collections import defaultdict

from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from audit.filters import AuditEventFilter
from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event_per_institution
from audit.tables import AuditEventTable
from sites.access import InstitutionScopedMixin, scope_audit_events
from audit.exports import AuditedExportMixin


class AuditLogView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    permission_required = "audit.view_auditevent"
    table_class = AuditEventTable
    filterset_class = AuditEventFilter
    template_name = "audit/auditevent_list.html"
    export_name = "audit-log"
    export_mrn_field = "mrns"
    export_institution_field = "institution"
    paginate_by = 100

    def get_queryset(self):
        return scope_audit_events(AuditEvent.objects.order_by("-id"), self.request.user)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if not self.is_export():
            shown: dict[str, set[str]] = defaultdict(set)
            for row in context["table"].paginated_rows:
                shown[row.record.institution].update(row.record.mrns)
            record_event_per_institution(actor=self.request.user, event=Event.AUDIT_VIEW, mrns_by_institution=shown,
                                         detail={"query": self.request.GET.urlencode(),
                                                 "rows": len(context["table"].paginated_rows)})
        return context
