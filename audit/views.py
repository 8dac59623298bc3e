"""The auditor's page: search the audit log, read it, export it (CSV/XLSX). Reading it is itself audited
(``audit.view``, naming the MRNs shown, per institution), and so is every export (``export``)."""
from __future__ import annotations

from collections import defaultdict

from django.views.generic import ListView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from audit.filters import AuditEventFilter
from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event_per_institution
from audit.tables import AuditEventTable, PseudonymMapTable
from inventory.models import PseudonymMap
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


class PseudonymMapView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, ListView):
    """The research exports' pseudonym maps of the user's institutions: the auditor role only
    (``inventory.view_pseudonymmap``); reading them re-identifies patients, so it is audited (``pseudonym.view``)."""

    permission_required = "inventory.view_pseudonymmap"
    table_class = PseudonymMapTable
    template_name = "audit/pseudonymmap_list.html"
    export_name = "pseudonym-maps"
    export_mrn_field = "mrn"
    export_institution_field = "institution__code"
    paginate_by = 100

    def get_queryset(self):
        return self.scoped(PseudonymMap.objects.select_related("institution").order_by("institution__code", "mrn"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if not self.is_export():
            shown: dict[str, set[str]] = defaultdict(set)
            for row in context["table"].paginated_rows:
                shown[row.record.institution.code].add(row.record.mrn)
            record_event_per_institution(actor=self.request.user, event=Event.PSEUDONYM_VIEW, mrns_by_institution=shown,
                                         detail={"rows": len(context["table"].paginated_rows)})
        return context
