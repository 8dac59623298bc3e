"""Project-wide pages: the home page with one card per institution."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from pdas.selectors import institution_cards


@login_required
def home(request):
    return render(request, "home.html", {"cards": institution_cards()})
