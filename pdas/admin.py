"""The admin site's titles, and users with their institutions (memberships) and roles (groups):
changes to them are audited as ``access.change``."""
from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from audit.events import Event
from audit.services import record_event
from sites.models import Membership

admin.site.site_header = _("PDAS administration")
admin.site.site_title = _("PDAS administration")
admin.site.index_title = _("Configuration and records")


class _AuditedAccessAdmin:
    """Adding, changing or deleting a user or a role is an ``access.change`` audit event (besides the
    admin's own history), with the account's resulting roles and institutions."""

    def _audit(self, request, obj, action: str, message="") -> None:
        detail = {"action": action, "model": obj._meta.label_lower, "row": str(obj), "message": str(message)}
        if isinstance(obj, User) and obj.pk:
            detail.update(groups=sorted(obj.groups.values_list("name", flat=True)),
                          institutions=sorted(obj.memberships.values_list("institution__code", flat=True)),
                          is_active=obj.is_active, is_staff=obj.is_staff, is_superuser=obj.is_superuser)
        record_event(actor=request.user, event=Event.ACCESS_CHANGE, obj=obj, detail=detail)

    def log_addition(self, request, obj, message):
        self._audit(request, obj, "add", message)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._audit(request, obj, "change", message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            self._audit(request, obj, "delete")
        return super().log_deletions(request, queryset)

    def response_action(self, request, queryset):
        # The admin's add, change and delete pages run in a transaction, its actions do not: the
        # delete action logs (and audits) the rows, then deletes them, and both must commit together.
        with transaction.atomic():
            return super().response_action(request, queryset)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    fields = ("institution",)
    verbose_name_plural = _("Institutions (whose data the user sees; superusers see all)")


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class PdasUserAdmin(_AuditedAccessAdmin, UserAdmin):
    inlines = [MembershipInline]
    list_display = ("username", "first_name", "last_name", "is_active", "is_staff", "is_superuser", "roles",
                    "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups", "memberships__institution")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description=_("Roles"))
    def roles(self, obj) -> str:
        return ", ".join(group.name for group in obj.groups.all())


@admin.register(Group)
class PdasGroupAdmin(_AuditedAccessAdmin, GroupAdmin):
    pass
