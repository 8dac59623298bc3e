"""Archive jobs pages (start a run, follow its patients live, read and export the ✓ × ! results) and the
restore page (search archives, restore one, follow it).

Access (sites.access): reading needs the view permission of the rows shown, starting a run
``archiver.run_archive``, restoring ``archiver.restore_patient``; rows, choices and objects of other
institutions than the user's are absent (404)."""
from __future__ import annotations

from collections import defaultdict

from django.conf import settings
from django.contrib import messages
from urllib.parse import urlencode

from django.http import FileResponse, JsonResponse
from django.urls import reverse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.generic import DetailView, TemplateView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from archiver import selectors
from archiver.filters import ArchiveRunFilter, PatientResultFilter, TargetCopyFilter
from archiver.forms import RestoreSearchForm, StartArchiveRunForm, StartRestoreForm
from archiver.models import ArchiveRun
from archiver.services import archiving
from archiver.services import rendition as rendition_service
from archiver.services import research_export
from archiver.services import restore as restore_service
from inventory.models import Archive, DicomRendition
from archiver.tables import (ArchiveRunTable, PatientResultTable, RestoreCandidateTable, RestoreRecordTable,
                             TargetCopyTable, TargetOverviewTable)
from archiver.tasks import prepare_archive_run_task, render_dicom_task, restore_archive_task
from connectors.urls import redact_url
from core.dispatch import dispatch
from audit.events import Event
from audit.services import record_event, record_event_per_institution
from sites.access import InstitutionScopedMixin, access_required, get_scoped_object_or_404, limit_choices
from audit.exports import AuditedExportMixin
from sites.models import StorageTarget


class ArchiveRunListView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    permission_required = "archiver.view_archiverun"
    table_class = ArchiveRunTable
    filterset_class = ArchiveRunFilter
    template_name = "archiver/run_list.html"
    export_name = "archive-runs"
    export_mrn_field = None  # runs list no patients
    paginate_by = 50

    def get_queryset(self):
        exporting = bool(self.request.GET.get(self.export_trigger_param))
        return self.scoped(selectors.archive_runs_with_counts(every_run=exporting))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if self.request.user.has_perm("archiver.run_archive"):
            context["start_form"] = self.limit_choices(StartArchiveRunForm())
        return context


class ArchiveRunDetailView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    permission_required = ("archiver.view_archiverun", "archiver.view_patientarchivetask")
    table_class = PatientResultTable
    filterset_class = PatientResultFilter
    template_name = "archiver/run_detail.html"
    paginate_by = 200
    export_mrn_field = "patient__mrn"

    def audit_institution(self) -> str:
        return self.run.institution.code

    def get_queryset(self):
        self.run = self.get_scoped_object_or_404(ArchiveRun.objects.select_related("institution"), pk=self.kwargs["pk"])
        return selectors.run_tasks(run=self.run)

    def get_export_filename(self, export_format):
        return f"archive-run-{self.run.pk}.{export_format}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["run"] = self.run
        context["counts"] = counts = selectors.run_result_counts(run=self.run)
        context["outcome"], context["outcome_display"] = self.run.outcome(errors=counts["error"],
                                                                          warnings=counts["warning"])
        if not self.is_export():
            shown = [row.record.patient.mrn for row in context["table"].paginated_rows]
            record_event(actor=self.request.user, event=Event.ARCHIVERUN_VIEW, institution=self.run.institution.code,
                         mrns=shown, obj=self.run, detail={"query": self.request.GET.urlencode(), "rows": len(shown)})
        return context


@access_required("archiver.run_archive")
@require_POST
def start_run(request):
    """Ask for a run: its row now, the rest (recovery, TPS re-read, curation, the patients) in the
    background (``core.dispatch``); the run's page follows it."""
    form = limit_choices(StartArchiveRunForm(request.POST), request.user)
    if not form.is_valid():
        messages.error(request, _("Choose an institution."))
        return redirect("archiver:run-list")
    run = archiving.request_archive_run(institution=form.cleaned_data["institution"], actor=request.user)
    dispatch(prepare_archive_run_task, run.pk)
    messages.success(request, _("Archive run %(id)s started.") % {"id": run.pk})
    return redirect("archiver:run-detail", pk=run.pk)


@access_required("archiver.view_archiverun")
def run_progress(request, pk: int):
    run = get_scoped_object_or_404(request, ArchiveRun.objects.all(), pk=pk)
    return JsonResponse(selectors.run_progress(run=run))


# --- restore -----------------------------------------------------------------------------------------------


class RestoreView(InstitutionScopedMixin, TemplateView):
    """Search archives by MRN or name; each candidate has a restore button (POST, confirmed)."""

    permission_required = "archiver.view_restorerecord"
    template_name = "archiver/restore.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = self.limit_choices(RestoreSearchForm(self.request.GET or None))
        context["form"] = form
        if form.is_bound and form.is_valid():
            institution = form.cleaned_data["institution"]
            candidates = restore_service.find_candidates(institution=institution, mrn=form.cleaned_data["mrn"],
                                                         name=form.cleaned_data["name"], actor=self.request.user)
            table = RestoreCandidateTable(candidates)
            table.institution_id = institution.pk
            table.renditions = selectors.renditions_by_archive([c.archive_id for c in candidates if c.archive_id])
            table.can_restore = self.request.user.has_perm("archiver.restore_patient")
            table.can_render = self.request.user.has_perm("inventory.make_dicom_rendition")
            table.can_export = self.request.user.has_perm("inventory.export_research_dicom")
            context.update(candidates=candidates, table=table, institution=institution,
                           patients=len({c.identity for c in candidates}))
        recent = list(self.scoped(selectors.recent_restores())[:20])
        context["recent"] = RestoreRecordTable(recent)
        if recent:  # the list names patients (MRN, archive)
            shown: dict[str, set[str]] = defaultdict(set)
            for record in recent:
                shown[record.institution.code].add(record.archive.mrn)
            record_event_per_institution(actor=self.request.user, event=Event.RESTORE_VIEW, mrns_by_institution=shown,
                                         detail={"page": "recent restores", "rows": len(recent)})
        return context


@access_required("archiver.restore_patient")
@require_POST
def start_restore(request):
    form = limit_choices(StartRestoreForm(request.POST), request.user)
    if not form.is_valid():
        messages.error(request, _("Choose an institution and an archive."))
        return redirect("archiver:restore")
    institution = form.cleaned_data["institution"]
    try:
        archive = restore_service.ensure_indexed(institution=institution, name=form.cleaned_data["archive"],
                                                 actor=request.user)
        record = restore_service.create_restore(archive=archive, institution=institution, actor=request.user)
    except restore_service.RestoreError as exc:
        messages.error(request, str(exc))
        return redirect("archiver:restore")
    dispatch(restore_archive_task, archive.pk, record.pk)
    return redirect("archiver:restore-detail", pk=record.pk)


class RestoreDetailView(InstitutionScopedMixin, DetailView):
    permission_required = "archiver.view_restorerecord"
    template_name = "archiver/restore_detail.html"
    context_object_name = "record"

    def get_object(self, queryset=None):
        record = self.get_scoped_object_or_404(selectors.recent_restores(), pk=self.kwargs["pk"])
        # The page polls restore_status for progress: that poll is not a new read and is not logged.
        record_event(actor=self.request.user, event=Event.RESTORE_VIEW, institution=record.institution.code,
                     mrns=[record.archive.mrn], obj=record, detail={"archive": record.archive.name})
        return record


@access_required("archiver.view_restorerecord")
def restore_status(request, pk: int):
    record = get_scoped_object_or_404(request, selectors.recent_restores(), pk=pk)
    return JsonResponse(selectors.restore_progress(record=record))


@access_required("inventory.view_archive", "inventory.view_dicomrendition")
def download_rendition(request, pk: int):
    """The DICOM-RT rendition of an archive of the user's institutions (a reference copy, not for treatment),
    read whole from a target; audited as a read of the patient's data."""
    archive = get_scoped_object_or_404(request, Archive.objects.select_related("institution"), pk=pk)
    back = f"{reverse('archiver:restore')}?{urlencode({'institution': archive.institution_id, 'mrn': archive.mrn})}"
    rendition = DicomRendition.objects.filter(archive=archive).first()
    if rendition is None or not rendition.made:
        messages.error(request, _("%(archive)s has no DICOM rendition made.") % {"archive": archive.name})
        return redirect(back)
    try:
        handle, target = rendition_service.fetch_rendition(rendition)
    except rendition_service.RenditionFailed as exc:
        record_event(actor=request.user, event=Event.RENDITION_DOWNLOAD, institution=archive.institution.code,
                     mrns=[archive.mrn], obj=rendition, outcome="failed",
                     detail={"rendition": rendition.name, "reason": str(exc)[:1000]})
        messages.error(request, str(exc))
        return redirect(back)
    record_event(actor=request.user, event=Event.RENDITION_DOWNLOAD, institution=archive.institution.code,
                 mrns=[archive.mrn], obj=rendition,
                 detail={"rendition": rendition.name, "target": target, "sha256": rendition.sha256})
    response = FileResponse(handle, as_attachment=True, filename=rendition.name, content_type="application/zip")
    response["X-PDAS-Notice"] = "Reference copy, not for treatment"
    return response


def _restore_page(archive: Archive) -> str:
    return f"{reverse('archiver:restore')}?{urlencode({'institution': archive.institution_id, 'mrn': archive.mrn})}"


@access_required("inventory.view_archive", "inventory.make_dicom_rendition")
@require_POST
def make_rendition(request, pk: int):
    """Start (or start again) the DICOM-RT rendition of an archive of the user's institutions, in the background."""
    archive = get_scoped_object_or_404(request, Archive.objects.select_related("institution"), pk=pk)
    current = DicomRendition.objects.filter(archive=archive).first()
    if current is not None and current.status in (DicomRendition.Status.PENDING, DicomRendition.Status.RUNNING):
        messages.info(request, _("The DICOM rendition of %(archive)s is already %(status)s.")
                      % {"archive": archive.name, "status": current.get_status_display()})
        return redirect(_restore_page(archive))
    rendition = rendition_service.request_rendition(archive=archive, actor=request.user)
    record_event(actor=request.user, event=Event.RENDITION_REQUEST, institution=archive.institution.code,
                 mrns=[archive.mrn], obj=rendition, detail={"archive": archive.name, "again": current is not None})
    dispatch(render_dicom_task, archive.pk)
    messages.success(request, _("The DICOM rendition of %(archive)s was started.") % {"archive": archive.name})
    return redirect(_restore_page(archive))


@access_required("inventory.view_archive", "inventory.export_research_dicom")
def research_export_view(request, pk: int):
    """The anonymised DICOM of a made rendition, for research or teaching (never raw Pinnacle files); the
    pseudonym map stays in PDAS, readable by auditors only."""
    archive = get_scoped_object_or_404(request, Archive.objects.select_related("institution"), pk=pk)
    rendition = DicomRendition.objects.select_related("archive", "institution").filter(archive=archive).first()
    if rendition is None or not rendition.made:
        messages.error(request, _("%(archive)s has no DICOM rendition made.") % {"archive": archive.name})
        return redirect(_restore_page(archive))
    try:
        export = research_export.export_research_dicom(rendition=rendition, actor=request.user)
    except research_export.ExportFailed as exc:
        messages.error(request, str(exc))
        return redirect(_restore_page(archive))
    response = FileResponse(export.handle, as_attachment=True, filename=export.filename,
                            content_type="application/zip")
    response["X-PDAS-Notice"] = "Anonymised for research or teaching; reference copy, not for treatment"
    return response


# --- storage targets -----------------------------------------------------------------------------------


class TargetListView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, TemplateView):
    """Every storage target of the user's institutions: its copies by state, the share of the fixity cycle
    covered, the oldest full check and the last restore drill. Counts only: no patient is named."""

    permission_required = "inventory.view_archivecopy"
    table_class = TargetOverviewTable
    template_name = "archiver/target_list.html"
    export_name = "storage-targets"
    export_mrn_field = None

    def get_table_data(self):
        # On the page the copies' counts are as counted within PDAS_COUNTS_CACHE_SECONDS (it says when;
        # ?refresh=1: now); an export counts them for the request.
        self.object_list = selectors.target_overviews(
            targets=self.scoped(StorageTarget.objects.all()),
            keep_seconds=0 if self.is_export() else settings.PDAS_COUNTS_CACHE_SECONDS,
            recount=bool(self.request.GET.get("refresh")))
        return self.object_list

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["counted_at"] = min((row.counted_at for row in self.object_list if row.counted_at), default=None)
        return context


class TargetDetailView(InstitutionScopedMixin, AuditedExportMixin, SingleTableMixin, FilterView):
    """One target: its figures, then its copies (the bad ones first) with their archive, patient and the
    latest check's method and reason; filtered and exported like the other tables (audited: names patients)."""

    permission_required = ("inventory.view_archivecopy", "inventory.view_archive")
    table_class = TargetCopyTable
    filterset_class = TargetCopyFilter
    template_name = "archiver/target_detail.html"
    paginate_by = 100
    export_mrn_field = "archive__mrn"

    def audit_institution(self) -> str:
        return self.target.institution.code

    def get_queryset(self):
        self.target = self.get_scoped_object_or_404(StorageTarget.objects.select_related("institution"),
                                                    pk=self.kwargs["pk"])
        return selectors.target_copies(target=self.target)

    def get_export_filename(self, export_format):
        return f"storage-{self.target.institution.code}-{self.target.name}.{export_format}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["target"] = self.target
        context["overview"] = selectors.target_overviews(targets=StorageTarget.objects.filter(pk=self.target.pk))[0]
        context["target_url"] = redact_url(self.target.url)
        if not self.is_export():
            shown = [row.record.archive.mrn for row in context["table"].paginated_rows]
            record_event(actor=self.request.user, event=Event.STORAGE_VIEW, institution=self.target.institution.code,
                         mrns=shown, obj=self.target,
                         detail={"target": self.target.name, "query": self.request.GET.urlencode(), "rows": len(shown)})
        return context
