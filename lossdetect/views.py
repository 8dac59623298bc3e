"""Loss detection pages: the scans, a scan's six category tabs and its tab of other planning systems, the
pending-archive table, the MRN aliases.

Every page that shows MRNs writes an audit event naming the MRNs shown (``lossscan.view``,
``pendingplan.view``, ``mrnalias.view``, one per institution shown); every CSV/XLSX export writes an
``export`` event naming the MRNs exported. Access (sites.access): reading needs the view permissions, a manual scan
``lossdetect.run_scan``; scans and plans of other institutions than the user's are absent (404).
"""
from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.db.models import Count
from django.http import JsonResponse, QueryDict
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from audit.events import Event
from audit.services import record_event, record_event_per_institution
from lossdetect import selectors
from lossdetect.filters import (
    LossFindingFilter, LossScanFilter, MrnAliasFilter, OtherTpsRecordFilter, PendingPlanFilter,
)
from lossdetect.forms import ManualScanForm
from lossdetect.models import Category, LossScan, PendingPlan
from lossdetect.services.scan import create_loss_scan
from lossdetect.tables import (
    CATEGORY_COLOURS, LossFindingTable, LossScanTable, MrnAliasTable, OtherTpsRecordTable, PendingPlanTable,
)
from lossdetect.tasks import run_loss_scan_task
from core.dispatch import dispatch
from sites.access import InstitutionScopedMixin, access_required, get_scoped_object_or_404, limit_choices
from audit.exports import AuditedExportMixin


class ScanListView(InstitutionScopedMixin, SingleTableMixin, FilterView):
    permission_required = "lossdetect.view_lossscan"
    table_class = LossScanTable
    filterset_class = LossScanFilter
    template_name = "lossdetect/scan_list.html"
    paginate_by = 50

    def get_queryset(self):
        return self.scoped(selectors.scan_list())

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if self.request.user.has_perm("lossdetect.run_scan"):
            context["scan_form"] = self.limit_choices(kwargs.get("scan_form") or ManualScanForm())
        context["pending_count"] = self.scoped(PendingPlan.objects.filter(status=PendingPlan.Status.PENDING)).count()
        return context


@access_required("lossdetect.run_scan")
@require_POST
def start_manual_scan(request):
    """Create a manual scan of any window and start it in the background (``core.dispatch``); its page
    shows it queued or running, and reloads when it finished."""
    form = limit_choices(ManualScanForm(request.POST), request.user)
    if not form.is_valid():
        errors = "; ".join(f"{form.fields[name].label if name in form.fields else ''} {' '.join(errs)}".strip()
                           for name, errs in form.errors.items())
        messages.error(request, _("The scan was not started: %(errors)s") % {"errors": errors})
        return redirect("lossdetect:scan-list")
    scan = create_loss_scan(institution=form.cleaned_data["institution"], window_from=form.cleaned_data["window_from"],
                            window_to=form.cleaned_data["window_to"], trigger=LossScan.Trigger.MANUAL,
                            actor=request.user)
    dispatch(run_loss_scan_task, scan.pk)
    messages.info(request, _("Scan %(id)s started.") % {"id": scan.pk})
    return redirect(scan)


@access_required("lossdetect.view_lossscan")
def scan_status(request, pk: int):
    """A scan's state, for its page's poll (no patient data: not audited)."""
    scan = get_scoped_object_or_404(request, LossScan.objects.all(), pk=pk)
    return JsonResponse(scan.status_json())


OTHER_TPS_TAB = "other_tps"


class ScanDetailView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    """One scan: six colour-coded tabs (``?tab=<category>``), each a filtered, exportable table, and a
    seventh (``?tab=other_tps``) of the window's records of other planning systems."""

    permission_required = ("lossdetect.view_lossscan", "lossdetect.view_lossfinding")
    template_name = "lossdetect/scan_detail.html"
    paginate_by = 100

    @property
    def tab(self) -> str:
        tab = self.request.GET.get("tab")
        return tab if tab in (*Category.values, OTHER_TPS_TAB) else Category.FIRST_COURSE_LOST.value

    def get_table_class(self):
        return OtherTpsRecordTable if self.tab == OTHER_TPS_TAB else LossFindingTable

    def get_filterset_class(self):
        return OtherTpsRecordFilter if self.tab == OTHER_TPS_TAB else LossFindingFilter

    def get_queryset(self):
        self.scan = self.get_scoped_object_or_404(LossScan.objects.select_related("institution"), pk=self.kwargs["pk"])
        if self.tab == OTHER_TPS_TAB:
            return selectors.scan_other_tps_records(scan=self.scan)
        return selectors.scan_findings(scan=self.scan, category=self.tab)

    def audit_institution(self) -> str:
        return self.scan.institution.code

    def get_export_filename(self, export_format):
        return f"loss-scan-{self.scan.pk}-{self.tab}.{export_format}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        counts = dict(self.scan.findings.values_list("category").annotate(n=Count("id")))
        tabs = [{"value": c.value, "label": c.label, "count": counts.get(c.value, 0), "colour": CATEGORY_COLOURS[c],
                 "active": c.value == self.tab} for c in Category]
        tabs.append({"value": OTHER_TPS_TAB, "label": _("Other planning systems"), "colour": "secondary",
                     "count": self.scan.other_tps_records.count(), "active": self.tab == OTHER_TPS_TAB})
        context.update(scan=self.scan, tab=self.tab, keep=[("tab", self.tab)], tabs=tabs,
                       other_tps_tab=self.tab == OTHER_TPS_TAB)
        if not self.is_export():
            rows = [row.record for row in context["table"].paginated_rows]
            shown = {mrn for record in rows for mrn in [record.mrn, *getattr(record, "also_known_as", [])]}
            record_event(actor=self.request.user, event=Event.LOSSSCAN_VIEW, institution=self.scan.institution.code,
                         mrns=shown, obj=self.scan, detail={"tab": self.tab, "rows": len(rows)})
        return context


class PendingPlanListView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    """The pending-archive table (待归档表); shows pending plans unless another status is asked for."""

    permission_required = "lossdetect.view_pendingplan"
    export_institution_field = "institution__code"
    table_class = PendingPlanTable
    filterset_class = PendingPlanFilter
    template_name = "lossdetect/pending_list.html"
    export_name = "pending-archive"
    paginate_by = 100

    def get_queryset(self):
        return self.scoped(selectors.pending_plans())

    def get_filterset_kwargs(self, filterset_class):
        kwargs = super().get_filterset_kwargs(filterset_class)
        data = (kwargs["data"] or QueryDict()).copy()
        data.setdefault("status", PendingPlan.Status.PENDING)  # "any status" sends status=""
        kwargs["data"] = data
        return kwargs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if not self.is_export():
            shown: dict[str, set[str]] = defaultdict(set)
            rows = context["table"].paginated_rows
            for row in rows:
                shown[row.record.institution.code].add(row.record.mrn)
            record_event_per_institution(actor=self.request.user, event=Event.PENDINGPLAN_VIEW,
                                         mrns_by_institution=shown,
                                         detail={"query": self.request.GET.urlencode(), "rows": len(rows)})
        return context


class MrnAliasListView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    """The MRN aliases of the user's institutions (edited in the admin, imported with ``import_mrn_aliases``)."""

    permission_required = "lossdetect.view_mrnalias"
    export_institution_field = "institution__code"
    table_class = MrnAliasTable
    filterset_class = MrnAliasFilter
    template_name = "lossdetect/alias_list.html"
    export_name = "mrn-aliases"
    paginate_by = 100

    def get_queryset(self):
        return self.scoped(selectors.mrn_aliases())

    def _exported_mrns(self, rows) -> dict[str, set[str]]:
        # A row names two MRNs of one patient: both are exported.
        by_institution: dict[str, set[str]] = defaultdict(set)
        for code, old_mrn, mrn in rows.values_list("institution__code", "old_mrn", "mrn"):
            by_institution[code].update((old_mrn, mrn))
        return by_institution

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["can_edit"] = self.request.user.is_staff and self.request.user.has_perm("lossdetect.change_mrnalias")
        if not self.is_export():
            shown: dict[str, set[str]] = defaultdict(set)
            rows = context["table"].paginated_rows
            for row in rows:
                shown[row.record.institution.code].update(row.record.mrns)
            record_event_per_institution(actor=self.request.user, event=Event.MRNALIAS_VIEW,
                                         mrns_by_institution=shown,
                                         detail={"query": self.request.GET.urlencode(), "rows": len(rows)})
        return context
