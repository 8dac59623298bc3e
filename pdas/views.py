"""Project-wide pages: the home page with one card per institution of the user."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from sites.access import has_no_institution, institutions_for
from pdas.selectors import institution_cards


@login_required
def home(request):
    """Counts only (no patient is named), so any logged-in user may see their institutions' cards."""
    cards = institution_cards(institutions=institutions_for(request.user))
    return render(request, "home.html", {"cards": cards, "no_access": not cards and has_no_institution(request.user)})
