"""Loss detection pages: the scans, a scan's six category tabs, the pending-archive table.

Every page that shows MRNs writes an audit event naming the MRNs shown (``lossscan.view``,
``pendingplan.view``); every CSV/XLSX export writes an ``export`` event naming the MRNs exported.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db import transaction
from django.db.models import Count
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from audit.services import record_event
from lossdetect import selectors
from lossdetect.filters import LossFindingFilter, LossScanFilter, PendingPlanFilter
from lossdetect.forms import ManualScanForm
from lossdetect.models import Category, LossScan, PendingPlan
from lossdetect.services.scan import start_loss_scan
from lossdetect.tables import CATEGORY_COLOURS, LossFindingTable, LossScanTable, PendingPlanTable
from lossdetect.tasks import run_loss_scan_task
from pdas.exports import AuditedExportMixin


class ScanListView(LoginRequiredMixin, SingleTableMixin, FilterView):
    table_class = LossScanTable
    filterset_class = LossScanFilter
    template_name = "lossdetect/scan_list.html"
    paginate_by = 50

    def get_queryset(self):
        return selectors.scan_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["scan_form"] = kwargs.get("scan_form") or ManualScanForm()
        context["pending_count"] = PendingPlan.objects.filter(status=PendingPlan.Status.PENDING).count()
        return context


@login_required
@require_POST
def start_manual_scan(request):
    """Create a manual scan of any window and hand it to a worker (in-process without a broker)."""
    form = ManualScanForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{form.fields[name].label if name in form.fields else ''} {' '.join(errs)}".strip()
                           for name, errs in form.errors.items())
        messages.error(request, _("The scan was not started: %(errors)s") % {"errors": errors})
        return redirect("lossdetect:scan-list")
    scan = start_loss_scan(institution=form.cleaned_data["institution"], window_from=form.cleaned_data["window_from"],
                           window_to=form.cleaned_data["window_to"], trigger=LossScan.Trigger.MANUAL,
                           actor=request.user)
    transaction.on_commit(lambda: run_loss_scan_task.delay(scan.pk))
    messages.info(request, _("Scan %(id)s started.") % {"id": scan.pk})
    return redirect(scan)


class ScanDetailView(LoginRequiredMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    """One scan: six colour-coded tabs (``?tab=<category>``), each a filtered, exportable table."""

    table_class = LossFindingTable
    filterset_class = LossFindingFilter
    template_name = "lossdetect/scan_detail.html"
    paginate_by = 100

    def get_queryset(self):
        self.scan = get_object_or_404(LossScan.objects.select_related("institution"), pk=self.kwargs["pk"])
        self.tab = self.request.GET.get("tab")
        if self.tab not in Category.values:
            self.tab = Category.FIRST_COURSE_LOST.value
        return selectors.scan_findings(scan=self.scan, category=self.tab)

    def audit_institution(self) -> str:
        return self.scan.institution.code

    def get_export_filename(self, export_format):
        return f"loss-scan-{self.scan.pk}-{self.tab}.{export_format}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        counts = dict(self.scan.findings.values_list("category").annotate(n=Count("id")))
        context.update(scan=self.scan, tab=self.tab, keep=[("tab", self.tab)], tabs=[
            {"value": c.value, "label": c.label, "count": counts.get(c.value, 0), "colour": CATEGORY_COLOURS[c],
             "active": c.value == self.tab}
            for c in Category
        ])
        if not self.is_export():
            shown = [row.record.mrn for row in context["table"].paginated_rows]
            record_event(actor=self.request.user, event="lossscan.view", institution=self.scan.institution.code,
                         mrns=shown, obj=self.scan, detail={"tab": self.tab, "rows": len(shown)})
        return context


class PendingPlanListView(LoginRequiredMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    """The pending-archive table (待归档表); shows pending plans unless another status is asked for."""

    table_class = PendingPlanTable
    filterset_class = PendingPlanFilter
    template_name = "lossdetect/pending_list.html"
    export_name = "pending-archive"
    paginate_by = 100

    def get_queryset(self):
        return selectors.pending_plans()

    def get_filterset_kwargs(self, filterset_class):
        kwargs = super().get_filterset_kwargs(filterset_class)
        data = (kwargs["data"] or QueryDict()).copy()
        data.setdefault("status", PendingPlan.Status.PENDING)  # "any status" sends status=""
        kwargs["data"] = data
        return kwargs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if not self.is_export():
            shown = [row.record.mrn for row in context["table"].paginated_rows]
            record_event(actor=self.request.user, event="pendingplan.view", mrns=shown,
                         detail={"query": self.request.GET.urlencode(), "rows": len(shown)})
        return context
