"""The main menu, defined once: label, URL name, permission.

A page joins the menu by its URL name alone: an entry whose name does not resolve yet is shown
disabled, so a new page appears the moment its app adds the URL. An entry is hidden from users
without its permission (``None``: any logged-in user; ``"is_staff"``: staff only).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class NavItem:
    label: str | Promise
    url_name: str
    permission: str | None = None


NAVIGATION: tuple[NavItem, ...] = (
    NavItem(_("Curation"), "curation:index", "inventory.view_tpspatient"),
    NavItem(_("Archive jobs"), "archiver:run-list", "archiver.view_archiverun"),
    NavItem(_("Restore"), "archiver:restore", "archiver.view_restorerecord"),
    NavItem(_("Storage"), "archiver:target-list", "inventory.view_archivecopy"),
    NavItem(_("Loss detection"), "lossdetect:scan-list", "lossdetect.view_lossscan"),
    NavItem(_("Reports"), "reports:index", "inventory.view_archive"),
    NavItem(_("Audit log"), "audit:log", "audit.view_auditevent"),
    NavItem(_("Pseudonym maps"), "audit:pseudonym-maps", "inventory.view_pseudonymmap"),
    NavItem(_("Admin"), "admin:index", "is_staff"),
)


@dataclass(frozen=True)
class NavLink:
    label: str | Promise
    url: str | None  # None: the page does not exist yet (shown disabled)
    active: bool


def _allowed(user, permission: str | None) -> bool:
    if permission is None:
        return True
    if permission == "is_staff":
        return user.is_staff
    return user.has_perm(permission)


def _url(url_name: str) -> str | None:
    try:
        return reverse(url_name)
    except NoReverseMatch:
        return None


def navigation_links(request) -> list[NavLink]:
    """The menu for this request's user; the entry whose URL starts the current path is active."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    links = []
    for item in NAVIGATION:
        if not _allowed(user, item.permission):
            continue
        url = _url(item.url_name)
        links.append(NavLink(item.label, url, bool(url) and request.path.startswith(url)))
    return links


def navigation(request) -> dict:
    """Template context processor: ``nav_links`` for base.html."""
    return {"nav_links": navigation_links(request)}
