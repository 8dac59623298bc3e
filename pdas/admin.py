"""What every PDAS admin page shares: view-only pages for computed rows, audited reads of patient data.

PDAS computes most of its rows (the TPS as last read, archives, copies, runs, scans, the audit log):
a hand edit would make the index disagree with the TPS and the storage targets behind the audit
log's back, so those pages only show. Pages that show patients write an ``admin.view`` audit event
naming the MRNs on the page, like every other read of patient data.
"""
from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from audit.services import record_event

admin.site.site_header = _("PDAS administration")
admin.site.site_title = _("PDAS administration")
admin.site.index_title = _("Configuration and records")


class _NoHandEdits:
    """Listed and shown, never added, changed or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ViewOnlyAdmin(_NoHandEdits, admin.ModelAdmin):
    """A computed model."""


class ViewOnlyInline(_NoHandEdits, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True


def _follow(obj, path: str):
    for attribute in path.split("__"):
        obj = getattr(obj, attribute, None) if obj is not None else None
    return obj


class PatientDataAdmin(ViewOnlyAdmin):
    """A view-only model holding patient data: reading its pages is audited.

    ``mrn_path`` leads from a row to its MRN (``"mrn"``, ``"patient__mrn"``) or MRN list
    (``"mrns"``); keep the relations it crosses in ``list_select_related`` so a page costs no
    query per row.
    """

    mrn_path = "mrn"

    def _audit_view(self, request, shown, **detail) -> None:
        mrns: set[str] = set()
        for row in shown:
            value = _follow(row, self.mrn_path)
            mrns.update(value if isinstance(value, list) else [value] if value else [])
        record_event(actor=request.user, event="admin.view", mrns=mrns,
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
