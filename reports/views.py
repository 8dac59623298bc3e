"""Reports pages: the report of an institution and period (figures, monthly trend charts, runs, reasons),
its printable monthly form, and the reconciliation of the archive index with a listing.

Viewing a report writes ``report.view``; every CSV/XLSX export writes ``export``; a reconciliation
import writes ``reconcile.import`` and viewing its entries ``reconcile.view`` with the MRNs shown.
Times are shown in the institution's time zone.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from sites.models import Institution
from audit.events import Event
from audit.services import record_event
from sites.access import InstitutionScopedMixin, access_required, has_no_institution, limit_choices
from audit.exports import AuditedExportMixin
from reports import selectors
from reports.filters import ReconciliationEntryFilter, ReconciliationImportFilter
from reports.forms import ReportForm, ReconcileForm
from reports.models import ReconciliationEntry, ReconciliationImport
from reports.services.reconcile import import_listing, reconcile_target
from reports.rows import chart_data, figure_rows, month_rows, run_rows
from reports.tables import (
    UNKNOWN, FigureTable, MonthTable, NumberColumn, ReasonTable, ReconciliationEntryTable, ReconciliationImportTable,
    RunTable,
)

REPORT_PERMISSION = "inventory.view_archive"
PAGE_RUNS = 31  # runs drawn on the page, the latest; the export and the printable report hold them all
REPORT_TABLES = {"figures": FigureTable, "months": MonthTable, "runs": RunTable, "reasons": ReasonTable}


@dataclass(frozen=True)
class Cell:
    text: str
    href: str = ""
    numeric: bool = False


def _text(value) -> str:
    if value is None or value == "":
        return UNKNOWN if value is None else ""
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (int, float)):
        return f"{value:,}"
    return str(value)


def page_table(table_class, rows: list[dict]) -> dict:
    """Headers and formatted cells of a report table, drawn by ``reports/_rows.html`` (see reports.tables)."""
    columns = list(table_class.base_columns.items())
    numeric = [isinstance(column, NumberColumn) for _, column in columns]
    return {
        "headers": [{"label": column.verbose_name, "numeric": n} for (_, column), n in zip(columns, numeric)],
        "rows": [[Cell(_text(row.get(name)), row.get(f"{name}_url", ""), n) for (name, _), n in zip(columns, numeric)]
                 for row in rows],
        "empty_text": table_class._meta.empty_text or "",
    }


class ReportView(InstitutionScopedMixin, AuditedExportMixin, TemplateView):
    """``?institution=CODE&period=month|quarter|year|custom&year=&month=&quarter=&first_day=&last_day=``;
    ``&_export=csv|xlsx&table=figures|months|runs|reasons`` exports one table. Only the user's institutions
    are offered; another institution's code is answered 404 (and audited), like every other page."""

    permission_required = REPORT_PERMISSION
    template_name = "reports/index.html"
    export_mrn_field = None  # figures and runs name no patient
    view_format = "page"

    def get(self, request, *args, **kwargs):
        # Tables and templates format times in the institution's zone: render while it is active.
        zone = self.report.period.zone if self.report else timezone.get_current_timezone()
        with timezone.override(zone):
            response = super().get(request, *args, **kwargs)
            if hasattr(response, "render"):
                response.render()
        return response

    @cached_property
    def form(self) -> ReportForm:
        """Bound to the query string over the defaults: the user's first institution, this month in its zone."""
        data = self.request.GET.copy()
        if data.get("institution"):
            institution = self.get_scoped_object_or_404(Institution.objects.all(), code=data["institution"])
        else:
            institution = self.institutions().order_by("code").first()
        today = timezone.localdate(timezone=institution.zone) if institution else timezone.localdate()
        # Opened without a period: this month, or, when nothing happened yet this month, the latest month
        # something did (a site that archives monthly, or the demo's data, is not an empty page).
        latest = selectors.latest_activity_day(institution=institution) if institution else None
        if latest is not None and latest < today.replace(day=1):
            today = latest
        for key, value in {"institution": institution.code if institution else "",
                           **ReportForm.defaults(today)}.items():
            if not data.get(key):
                data[key] = value
        return self.limit_choices(ReportForm(data))

    @cached_property
    def report(self) -> selectors.Report | None:
        """The page's figures as counted within the last PDAS_REPORT_CACHE_SECONDS (``&refresh=1``: now); the
        printable report and exports are counted for the request."""
        if not self.form.is_valid():
            return None
        institution, period = self.form.cleaned_data["institution"], self.form.cleaned_data["report_period"]
        if self.is_export() or self.view_format == "print":
            return selectors.build_report(institution=institution, period=period)
        return selectors.recent_report(institution=institution, period=period,
                                       recount=bool(self.request.GET.get("refresh")))

    @cached_property
    def rows(self) -> dict[str, list[dict]]:
        """The rows of each table: every run for exports and the printable report, the latest on the page."""
        report = self.report
        latest = None if self.is_export() or self.view_format == "print" else PAGE_RUNS
        return {"figures": figure_rows(report), "months": month_rows(report),
                "runs": run_rows(report, latest=latest), "reasons": report.reasons}

    def audit_institution(self) -> str:
        return self.report.institution.code if self.report else ""

    def get_table(self, **kwargs):
        if self.report is None:
            raise Http404(" ".join(self.form.error_lines()))
        name = self.request.GET.get("table", "figures")
        if name not in REPORT_TABLES:
            raise Http404(f"no table {name!r} (one of {', '.join(REPORT_TABLES)})")
        self.export_table = name
        self.object_list = self.rows[name]
        return REPORT_TABLES[name](self.object_list)

    def get_table_kwargs(self):
        return {}

    def get_export_filename(self, export_format):
        return f"report-{self.report.institution.code}-{self.report.period.slug}-{self.export_table}.{export_format}"

    def _refresh_query(self) -> str:
        query = self.request.GET.copy()
        query["refresh"] = "1"
        return query.urlencode()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        offered = self.form.fields["institution"].queryset.exists()
        context.update(form=self.form, report=self.report, form_errors=self.form.error_lines() if offered else [],
                       no_access=not offered and has_no_institution(self.request.user))
        if self.report is not None and not self.is_export():
            context.update(
                tables={name: page_table(REPORT_TABLES[name], rows) for name, rows in self.rows.items()},
                runs_hidden=max(0, self.report.throughput.runs - len(self.rows["runs"])), chart_data=chart_data(self.report),
                export_query=self.request.GET.urlencode(), refresh_query=self._refresh_query())
            record_event(actor=self.request.user, event=Event.REPORT_VIEW, institution=self.report.institution.code,
                         detail={"period": self.report.period.label, "from": str(self.report.period.first_day),
                                 "to": str(self.report.period.last_day), "format": self.view_format})
        return context


class ReportPrintView(ReportView):
    """The same report as one printable page (print CSS: A4 landscape, no menu)."""

    template_name = "reports/print.html"
    view_format = "print"


# --- reconciliation ---------------------------------------------------------------------------------------------


class ReconciliationListView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    permission_required = "reports.view_reconciliationimport"
    table_class = ReconciliationImportTable
    filterset_class = ReconciliationImportFilter
    template_name = "reports/reconcile_list.html"
    export_name = "reconciliations"
    export_mrn_field = None  # imports list no patients
    paginate_by = 50

    def get_queryset(self):
        return self.scoped(ReconciliationImport.objects.select_related("institution", "target")
                           .order_by("-created_at", "-id"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["reconcile_form"] = self.limit_choices(ReconcileForm())
        return context


@access_required("reports.add_reconciliationimport")
@require_POST
def start_reconciliation(request):
    form = limit_choices(ReconcileForm(request.POST, request.FILES), request.user)
    if not form.is_valid():
        for name, errors in form.errors.items():
            label = form.fields[name].label if name in form.fields else ""
            messages.error(request, f"{label}: {' '.join(errors)}" if label else " ".join(errors))
        return redirect("reports:reconcile-list")
    institution, target, listing = (form.cleaned_data["institution"], form.cleaned_data["target"],
                                    form.cleaned_data["listing"])
    if listing is not None:
        result = import_listing(institution=institution, data=listing.read(), listing_name=listing.name,
                                target=target, actor=request.user)
    else:
        result = reconcile_target(institution=institution, target=target, actor=request.user)
    if result.status != ReconciliationImport.Status.DONE:
        messages.error(request, _("The listing was not reconciled: %(error)s") % {"error": result.error})
        return redirect("reports:reconcile-list")
    return redirect(result)


class ReconciliationDetailView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    permission_required = "reports.view_reconciliationimport"
    table_class = ReconciliationEntryTable
    filterset_class = ReconciliationEntryFilter
    template_name = "reports/reconcile_detail.html"
    paginate_by = 200

    def get_queryset(self):
        self.reconciliation = self.get_scoped_object_or_404(
            ReconciliationImport.objects.select_related("institution", "target"), pk=self.kwargs["pk"])
        return self.reconciliation.entries.order_by("outcome", "file_name", "id")

    def audit_institution(self) -> str:
        return self.reconciliation.institution.code

    def get_export_filename(self, export_format):
        return f"reconciliation-{self.reconciliation.pk}.{export_format}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        counts = self.reconciliation.counts
        context.update(reconciliation=self.reconciliation, outcomes=[
            {"value": value, "label": label, "count": counts.get(value, 0)}
            for value, label in ReconciliationEntry.Outcome.choices
        ])
        if not self.is_export():
            shown = [row.record.mrn for row in context["table"].paginated_rows]
            record_event(actor=self.request.user, event=Event.RECONCILE_VIEW,
                         institution=self.reconciliation.institution.code, mrns=shown, obj=self.reconciliation,
                         detail={"query": self.request.GET.urlencode(), "rows": len(shown)})
        return context
