"""What every PDAS admin page shares: institution scope, view-only pages for computed rows and audited
reads of patient data (the users' institutions and roles are edited in pdas/admin.py).

Every PDAS model admin derives from ``InstitutionScopedAdmin``: a staff user sees and picks only rows of
their institutions (sites.access), like on the other pages. PDAS computes most of its rows (the TPS as
last read, archives, copies, runs, scans, the audit log): a hand edit would make the index disagree
with the TPS and the storage targets behind the audit log's back, so those pages only show. Pages
that show patients write an ``admin.view`` audit event naming the MRNs on the page, like every other
read of patient data. Changes to users, their roles and institutions are audited as ``access.change``.
"""
from __future__ import annotations

from collections import defaultdict

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import FieldDoesNotExist

from audit.events import Event
from audit.services import record_event_per_institution
from sites.access import institution_path, scope
from sites.models import Institution



class _NoHandEdits:
    """Listed and shown, never added, changed or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _leads_to_institution(model, path: str) -> bool:
    try:
        fields = get_fields_from_path(model, path)
    except (FieldDoesNotExist, admin.utils.NotRelationField):
        return False
    return getattr(fields[-1], "related_model", None) is Institution


class InstitutionScopedAdmin(admin.ModelAdmin):
    """Rows, foreign-key choices and list filters limited to the user's institutions."""

    def scope_queryset(self, request, queryset):
        return scope(queryset, request.user)

    def get_queryset(self, request):
        return self.scope_queryset(request, super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        queryset = getattr(formfield, "queryset", None)
        if queryset is not None and institution_path(queryset.model) is not None:
            formfield.queryset = scope(queryset, request.user)
        return formfield

    def get_list_filter(self, request):
        # A filter by institution offers only the institutions of the rows the user can see.
        return [(entry, admin.RelatedOnlyFieldListFilter)
                if isinstance(entry, str) and _leads_to_institution(self.model, entry) else entry
                for entry in super().get_list_filter(request)]


class ViewOnlyAdmin(_NoHandEdits, InstitutionScopedAdmin):
    """A computed model."""


class ViewOnlyInline(_NoHandEdits, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True


def _follow(obj, path: str):
    for attribute in path.split("__"):
        obj = getattr(obj, attribute, None) if obj is not None else None
    return obj


class AuditedReadsMixin:
    """Reading the pages of a model holding patient data writes ``admin.view`` (put it before the admin class).

    ``mrn_path`` leads from a row to its MRN (``"mrn"``, ``"patient__mrn"``) or MRN list
    (``"mrns"``); keep the relations it crosses in ``list_select_related`` so a page costs no
    query per row.
    """

    mrn_path = "mrn"

    def _audit_view(self, request, shown, **detail) -> None:
        """One ``admin.view`` event per institution of the rows shown (one query for their institutions)."""
        shown = list(shown)
        path = institution_path(self.model)
        if path is None:  # the audit log's rows hold the institution code themselves
            codes = {row.pk: getattr(row, "institution", "") for row in shown}
        else:
            codes = dict(self.model._default_manager.filter(pk__in=[row.pk for row in shown])
                         .values_list("pk", f"{path}__code" if path else "code"))
        mrns: dict[str, set[str]] = defaultdict(set)
        for row in shown:
            value = _follow(row, self.mrn_path)
            mrns[codes.get(row.pk) or ""].update(value if isinstance(value, list) else [value] if value else [])
        record_event_per_institution(actor=request.user, event=Event.ADMIN_VIEW, mrns_by_institution=mrns,
                                     detail={"model": self.opts.label_lower, **detail})

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:  # None: a redirect or an error page
            self._audit_view(request, changelist.result_list, query=request.GET.urlencode(),
                             rows=len(changelist.result_list))
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        original = getattr(response, "context_data", {}).get("original")
        if original is not None:
            self._audit_view(request, [original], object_id=str(original.pk))
        return response


class PatientDataAdmin(AuditedReadsMixin, ViewOnlyAdmin):
    """A view-only model holding patient data: reading its pages is audited."""


# --- users: their institutions and roles, every change audited ------------------------------------------
