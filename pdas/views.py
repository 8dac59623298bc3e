"""Project-wide pages: the home page with one card per institution of the user; /healthz and /metrics."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sites.access import has_no_institution, institutions_for
from pdas.lockout import lockout_minutes, pair_failures
from pdas.selectors import institution_cards


@login_required
def home(request):
    """Counts only (no patient is named), so any logged-in user may see their institutions' cards;
    ``?refresh=1`` counts the archives without a verified copy now (core.kept)."""
    cards = institution_cards(institutions=institutions_for(request.user), recount=bool(request.GET.get("refresh")))
    return render(request, "home.html", {"cards": cards, "no_access": not cards and has_no_institution(request.user)})


class LoginView(auth_views.LoginView):
    """Django's login page, warning before the attempt that would lock the name at this workstation."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        if self.request.method == "POST" and form is not None and form.errors:
            username = self.request.POST.get("username", "")
            if settings.AXES_FAILURE_LIMIT - pair_failures(self.request, username) == 1:
                context["last_attempt"] = {"username": username, "minutes": lockout_minutes(self.request)}
        return context


def _refused() -> HttpResponse:
    return HttpResponse("403 Forbidden: not a monitoring address, and no valid bearer token\n", status=403,
                        content_type="text/plain; charset=utf-8")


@never_cache
@require_GET
def healthz(request):
    """docs/operations.md, "Monitoring": 200 when no check fails, else 503; ``?live=1``: the database only."""
    from pdas.monitoring.access import monitoring_allowed
    from pdas.monitoring.health import health

    if not monitoring_allowed(request):
        return _refused()
    status, body = health(live_only=request.GET.get("live") == "1")
    return JsonResponse(body, status=status, json_dumps_params={"indent": 1})


@never_cache
@require_GET
def metrics(request):
    """Prometheus' text format (pdas/monitoring/metrics.py)."""
    from pdas.monitoring.access import monitoring_allowed
    from pdas.monitoring.metrics import CONTENT_TYPE, metrics_text

    if not monitoring_allowed(request):
        return _refused()
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE)
