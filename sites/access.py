"""Who may see what: the one place that applies permissions and institution scope to views and querysets.

Two questions decide every request:

1. *May this user do this at all?* A Django permission, granted through a role (sites/roles.py).
   Anonymous users are sent to the login page; a logged-in user without the permission gets 403,
   and the refusal is audited (``access.denied``).
2. *Is this row one of the user's institutions?* ``scope()`` narrows any queryset to the institutions
   the user is a member of (``sites.models.Membership``; superusers see all). A row of another
   institution is answered with 404, as if it did not exist (its existence is not confirmed to the
   user), and the attempt is audited with the row's institution so that institution's auditor sees it.

The path from a model to its institution is found from the foreign keys (``institution_path``), so a
new model with an ``institution`` key, or a key to such a model, is scoped without further code.

Management commands do not pass through here: they run as the operating-system account that can
read the site's secrets anyway, and are audited as that account (``core.commands.cli_actor``).
"""
from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import Http404

from sites.models import Institution
from audit.models import AuditEvent
from audit.events import LOGIN_EVENTS, Event
from audit.services import record_event


def _active_login(user) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def sees_everything(user) -> bool:
    """Superusers are not limited to institutions (they also manage the memberships)."""
    return _active_login(user) and user.is_superuser


def institutions_for(user) -> QuerySet[Institution]:
    """The institutions whose data ``user`` may see (none for anonymous or inactive users)."""
    if not _active_login(user):
        return Institution.objects.none()
    if user.is_superuser:
        return Institution.objects.all()
    return Institution.objects.filter(memberships__user=user)


def institution_facts(user) -> list[tuple[int, str, str]]:
    """(pk, code, time_zone) of the user's institutions, read once per user object, that is once per request
    (the site-time-zone middleware asks first; forms' institution choices reuse it)."""
    cached = getattr(user, "_pdas_institution_facts", None)
    if cached is None:
        cached = list(institutions_for(user).order_by("pk").values_list("pk", "code", "time_zone"))
        try:
            user._pdas_institution_facts = cached
        except AttributeError:
            pass  # an object that takes no attributes: asked again next time
    return cached


def has_no_institution(user) -> bool:
    """Institutions exist but the user is a member of none: pages say so instead of "none configured"."""
    return not institutions_for(user).exists() and Institution.objects.exists()


@functools.cache
def institution_path(model: type[Model]) -> str | None:
    """The lookup from ``model`` to its Institution over foreign keys, shortest first
    (``"institution"``, ``"archive__institution"``); ``""`` for Institution itself, None when there is none."""
    if model is Institution:
        return ""
    queue, seen = deque([(model, "")]), {model}
    while queue:
        current, prefix = queue.popleft()
        for field in current._meta.get_fields():
            if not (field.is_relation and field.concrete and (field.many_to_one or field.one_to_one)):
                continue
            target, path = field.related_model, f"{prefix}{field.name}"
            if target is Institution:
                return path
            if target not in seen:
                seen.add(target)
                queue.append((target, f"{path}__"))
    return None


def scope(queryset: QuerySet, user) -> QuerySet:
    """``queryset`` narrowed to the rows of ``user``'s institutions (one query, a subquery inside)."""
    if sees_everything(user):
        return queryset
    path = institution_path(queryset.model)
    if path is None:
        raise ImproperlyConfigured(f"{queryset.model._meta.label} has no foreign key leading to an institution")
    return queryset.filter(**{f"{path}__in" if path else "pk__in": institutions_for(user)})


def scope_audit_events(queryset: QuerySet[AuditEvent], user) -> QuerySet[AuditEvent]:
    """Audit events of the user's institutions, plus the events that name no institution and no patient
    (refusals without a row, user changes). An event naming patients but no institution is shown to
    superusers only: it cannot be told which institution's patients they are. So are log-ins, log-outs,
    failed log-ins and lockouts (``LOGIN_EVENTS``): they concern every institution's users at once, and
    the name tried at a failed log-in may be a password typed into the wrong box."""
    if sees_everything(user):
        return queryset
    codes = institutions_for(user).values("code")
    return (queryset.filter(Q(institution__in=codes) | Q(institution="", mrns=[]))
            .exclude(event__in=sorted(LOGIN_EVENTS)))


def _audit_denied(request, *, reason: str, institution: str = "", **detail) -> None:
    record_event(actor=request.user, event=Event.ACCESS_DENIED, institution=institution,
                 outcome=AuditEvent.Outcome.DENIED,
                 detail={"path": request.path, "method": request.method, "reason": reason, **detail})


def get_scoped_object_or_404(request, queryset: QuerySet, **lookup) -> Model:
    """The row of ``queryset`` matching ``lookup`` if it belongs to one of the user's institutions, else 404.

    A row that exists in another institution is audited as ``access.denied`` (one more query, only then)."""
    try:
        return scope(queryset, request.user).get(**lookup)
    except queryset.model.DoesNotExist:
        path = institution_path(queryset.model)
        code = queryset.filter(**lookup).values_list(f"{path}__code" if path else "code", flat=True).first()
        if code is not None:
            _audit_denied(request, reason="other institution", institution=code,
                          model=queryset.model._meta.label_lower, lookup={k: str(v) for k, v in lookup.items()})
        raise Http404(f"no {queryset.model._meta.verbose_name} matches the query") from None


def limit_choices(form, user):
    """Narrow every model choice of ``form`` (institutions, storage targets, ...) to the user's
    institutions, so another institution is neither offered nor accepted. Returns the form.

    A user of one institution gets it chosen already (no empty choice to pick past): most departments
    run one institution, and a filter or a "Start" form that asks for it every time is noise."""
    for field in form.fields.values():
        queryset = getattr(field, "queryset", None)
        if queryset is not None and institution_path(queryset.model) is not None:
            field.queryset = scope(queryset, user)
            if queryset.model is Institution and isinstance(field, ModelChoiceField) \
                    and not isinstance(field, ModelMultipleChoiceField):
                facts = institution_facts(user)
                if len(facts) == 1:
                    pk, code, _zone = facts[0]
                    field.empty_label = None
                    field.initial = code if field.to_field_name == "code" else pk
                    # Read once: without an empty choice the widget looks at the first choice to decide on
                    # "required", which would run the query a second time.
                    field.widget.choices = list(iter(field.choices))  # iter: list() would ask len(), a COUNT
    return form


class InstitutionScopedMixin(LoginRequiredMixin, PermissionRequiredMixin):
    """Every PDAS page: log-in, then ``permission_required``, then rows of the user's institutions only.

    Use ``self.scoped(queryset)`` for lists, ``self.get_scoped_object_or_404(queryset, pk=...)`` for one
    row and ``self.limit_choices(form)`` for forms; a FilterSet's choices are narrowed here.
    """

    def handle_no_permission(self):
        if self.request.user.is_authenticated:
            _audit_denied(self.request, reason="permission", permissions=list(self.get_permission_required()))
        return super().handle_no_permission()

    def institutions(self) -> QuerySet[Institution]:
        return institutions_for(self.request.user)

    def scoped(self, queryset: QuerySet) -> QuerySet:
        return scope(queryset, self.request.user)

    def get_scoped_object_or_404(self, queryset: QuerySet, **lookup) -> Model:
        return get_scoped_object_or_404(self.request, queryset, **lookup)

    def limit_choices(self, form):
        return limit_choices(form, self.request.user)

    def get_filterset(self, filterset_class):
        filterset = super().get_filterset(filterset_class)
        limit_choices(filterset.form, self.request.user)
        return filterset


def access_required(*permissions: str) -> Callable:
    """Function views: log-in, then every one of ``permissions`` (403 and ``access.denied`` otherwise).
    Scope the rows inside the view with ``get_scoped_object_or_404`` / ``scope`` / ``limit_choices``."""
    if not permissions:
        raise ImproperlyConfigured("access_required needs at least one permission")

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def checked(request, *args, **kwargs):
            if not request.user.has_perms(permissions):
                _audit_denied(request, reason="permission", permissions=list(permissions))
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return login_required(checked)

    return decorator

