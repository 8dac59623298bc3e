"""Curation pages: the pending group in colour-coded category tabs, one patient, acknowledging, re-running.

Every page that shows patients writes an audit event naming their MRNs (``curation.view``,
``patient.view``); every CSV/XLSX export writes an ``export`` event. Access (sites.access): reading needs
the view permissions, re-running ``curation.run_curation``, acknowledging ``curation.acknowledge_finding``;
other institutions than the user's are absent (404).
"""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from inventory.models import TpsPatient
from sites.models import Institution
from audit.events import Event
from audit.services import record_event
from curation import selectors
from curation.filters import CurationFindingFilter
from curation.forms import AcknowledgeForm, RerunForm
from curation.models import Category, CurationFinding, CurationRun
from curation.services.acknowledge import acknowledge_finding
from curation.services.curate import create_curation
from curation.tables import CATEGORY_COLOURS, CATEGORY_HELP, CurationFindingTable
from curation.tasks import curate_task
from core.dispatch import dispatch
from sites.access import (
    InstitutionScopedMixin, access_required, get_scoped_object_or_404, has_no_institution, limit_choices,
)
from audit.exports import AuditedExportMixin


def _index_url(institution: Institution, tab: str | None = None) -> str:
    query = {"institution": institution.code, **({"tab": tab} if tab else {})}
    return f"{reverse('curation:index')}?{urlencode(query)}"


class CurationView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    """The latest curation of one institution: a tab per category (``?tab=``), each a filtered,
    sortable, exportable table whose rows carry the category's colour."""

    permission_required = ("curation.view_curationfinding", "inventory.view_tpspatient")
    table_class = CurationFindingTable
    filterset_class = CurationFindingFilter
    template_name = "curation/index.html"
    paginate_by = 100

    def get_queryset(self):
        institutions = self.institutions().order_by("code")
        code = self.request.GET.get("institution")
        self.institution = institutions.filter(code=code).first() if code else institutions.first()
        if code and self.institution is None:
            raise Http404(f"no institution {code!r}")
        self.run = selectors.latest_done_run(institution=self.institution) if self.institution else None
        self.counts = selectors.category_counts(run=self.run) if self.run else dict.fromkeys(Category.values, 0)
        self.tab = self.request.GET.get("tab")
        if self.tab not in Category.values:
            # Open on the first category that needs a look, else on the ready patients.
            self.tab = next((c for c in Category.values if c != Category.READY and self.counts[c]), Category.READY)
        if self.run is None:
            return CurationFinding.objects.none()
        return selectors.run_findings(run=self.run, category=self.tab)

    def audit_institution(self) -> str:
        return self.institution.code if self.institution else ""

    def get_export_filename(self, export_format):
        return f"curation-{self.audit_institution()}-{self.tab}.{export_format}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        institution = self.institution
        context.update(
            institution=institution, institutions=self.institutions().order_by("code"), run=self.run, tab=self.tab,
            keep=[("institution", institution.code), ("tab", self.tab)] if institution else [],
            no_access=institution is None and has_no_institution(self.request.user),
            latest=selectors.latest_run(institution=institution) if institution else None,
            tabs=[{"value": c.value, "label": c.label, "count": self.counts[c.value], "colour": CATEGORY_COLOURS[c],
                   "help": CATEGORY_HELP[c], "active": c.value == self.tab,
                   "url": _index_url(institution, c.value) if institution else ""}
                  for c in Category],
        )
        if not self.is_export() and institution is not None:
            shown = [row.record.mrn for row in context["table"].paginated_rows]
            record_event(actor=self.request.user, event=Event.CURATION_VIEW, institution=institution.code, mrns=shown,
                         obj=self.run, detail={"tab": self.tab, "rows": len(shown),
                                               "query": self.request.GET.urlencode()})
        return context


@access_required("curation.run_curation")
@require_POST
def rerun(request):
    """Start a curation of the chosen institution in the background (``core.dispatch``); the page it
    returns to shows the run queued or running, and reloads when it finished."""
    form = limit_choices(RerunForm(request.POST), request.user)
    if not form.is_valid():
        messages.error(request, _("Choose an institution."))
        return redirect("curation:index")
    institution = form.cleaned_data["institution"]
    run = create_curation(institution=institution, actor=request.user)
    dispatch(curate_task, run.pk)
    messages.info(request, _("Curation %(id)s started.") % {"id": run.pk})
    return redirect(_index_url(institution))


@access_required("curation.view_curationrun")
def run_status(request, pk: int):
    """A curation run's state, for the page's poll (no patient data: not audited)."""
    run = get_scoped_object_or_404(request, CurationRun.objects.all(), pk=pk)
    return JsonResponse(run.status_json())


@access_required("inventory.view_tpspatient", "curation.view_curationfinding")
def patient_detail(request, pk: int):
    """One patient: plans, trials, image sets, sizes and every finding of the latest curation."""
    patient = get_scoped_object_or_404(request, TpsPatient.objects.select_related("institution", "restored_from"),
                                       pk=pk)
    run = selectors.latest_done_run(institution=patient.institution)
    findings = list(selectors.patient_findings(patient=patient, run=run))
    acknowledgements = list(selectors.patient_acknowledgements(patient=patient))
    for ack in acknowledgements:
        ack.holds = ack.holds_for(patient)
    record_event(actor=request.user, event=Event.PATIENT_VIEW, institution=patient.institution.code,
                 mrns=[patient.mrn], obj=patient, detail={"page": "curation", "tps_path": patient.tps_path})
    return render(request, "curation/patient.html", {
        "patient": patient, "plans": list(patient.plans.order_by("plan_id")), "run": run,
        "findings": [(f, CATEGORY_COLOURS[f.category], AcknowledgeForm(initial={"finding": f.pk})) for f in findings],
        "acknowledgements": acknowledgements, "stale": run is not None and findings
        and findings[0].fingerprint != patient.fingerprint,
        "back_url": _index_url(patient.institution, findings[0].category if findings else None),
    })


@access_required("curation.acknowledge_finding")
@require_POST
def acknowledge(request, pk: int):
    patient = get_scoped_object_or_404(request, TpsPatient.objects.all(), pk=pk)
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Not acknowledged: say in a note what was reviewed."))
        return redirect("curation:patient", pk=pk)
    finding = get_object_or_404(CurationFinding.objects.select_related("run__institution", "patient"),
                                pk=form.cleaned_data["finding"], patient=patient)
    try:
        acknowledge_finding(finding=finding, user=request.user, note=form.cleaned_data["note"])
    except ValidationError as exc:
        messages.error(request, _("Not acknowledged: %(reason)s") % {"reason": " ".join(exc.messages)})
    else:
        messages.success(request, _("Acknowledged for the patient's files as they are now; any change to them "
                                    "voids it."))
    return redirect("curation:patient", pk=pk)
