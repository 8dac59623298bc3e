"""Archive jobs pages: start a run, follow its patients live, read and export the ✓ × ! results."""
from __future__ import annotations

import threading

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.contrib.auth.decorators import login_required
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from archiver import selectors
from archiver.filters import ArchiveRunFilter, PatientResultFilter
from archiver.forms import StartArchiveRunForm
from archiver.models import ArchiveRun
from archiver.services import archiving
from archiver.tables import ArchiveRunTable, PatientResultTable
from archiver.tps.base import TpsError
from pdas.exports import AuditedExportMixin


class ArchiveRunListView(LoginRequiredMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    table_class = ArchiveRunTable
    filterset_class = ArchiveRunFilter
    template_name = "archiver/run_list.html"
    export_name = "archive-runs"
    export_mrn_field = None  # runs list no patients
    paginate_by = 50

    def get_queryset(self):
        return selectors.archive_runs_with_counts()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["start_form"] = StartArchiveRunForm()
        return context


class ArchiveRunDetailView(LoginRequiredMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    table_class = PatientResultTable
    filterset_class = PatientResultFilter
    template_name = "archiver/run_detail.html"
    paginate_by = 200
    export_mrn_field = "patient__mrn"

    def audit_institution(self) -> str:
        return self.run.institution.code

    def get_queryset(self):
        self.run = get_object_or_404(ArchiveRun.objects.select_related("institution"), pk=self.kwargs["pk"])
        return selectors.run_tasks(run=self.run)

    def get_export_filename(self, export_format):
        return f"archive-run-{self.run.pk}.{export_format}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["run"] = self.run
        context["counts"] = selectors.run_result_counts(run=self.run)
        return context


def _run_in_background(run_id: int) -> None:
    try:
        archiving.run_in_process(run=ArchiveRun.objects.get(pk=run_id))
    finally:
        connection.close()


@login_required
@require_POST
def start_run(request):
    form = StartArchiveRunForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose an institution."))
        return redirect("archiver:run-list")
    try:
        run = archiving.prepare_archive_run(institution=form.cleaned_data["institution"], actor=request.user)
    except TpsError as exc:
        messages.error(request, _("The TPS cannot be read: %(error)s") % {"error": exc})
        return redirect("archiver:run-list")
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # Embedded mode has no worker: archive in a background thread of this process.
        threading.Thread(target=_run_in_background, args=(run.pk,), daemon=True).start()
    else:
        archiving.enqueue_run(run=run)
    messages.success(request, _("Archive run %(id)s started.") % {"id": run.pk})
    return redirect("archiver:run-detail", pk=run.pk)


@login_required
def run_progress(request, pk: int):
    run = get_object_or_404(ArchiveRun, pk=pk)
    return JsonResponse(selectors.run_progress(run=run))
