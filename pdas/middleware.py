"""Every page in the site's time zone (docs/configuration.md, "Time zone").

A person reads times in one zone, labelled: their institutions' ``time_zone`` when all of them share one
(the usual case: one department), else ``PDAS_TIME_ZONE``. The zone is made active for the request, so
templates, forms and exports show local times. It costs one small query per request, so a change of
institutions or of an institution's zone shows at once.
"""
from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.utils import timezone

from sites.access import institution_facts


def site_zone_name(user) -> str:
    """The zone a user's pages are shown in (see the module docstring)."""
    zones = {zone or settings.TIME_ZONE for _pk, _code, zone in institution_facts(user)}
    return zones.pop() if len(zones) == 1 else settings.TIME_ZONE


class SiteTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = settings.TIME_ZONE
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            name = site_zone_name(user)
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone, name = zoneinfo.ZoneInfo(settings.TIME_ZONE), settings.TIME_ZONE
        request.site_time_zone = name
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def site_time_zone(request) -> dict:
    """Template context processor: ``site_time_zone`` (its name) and ``site_utc_offset`` (``+08:00``)."""
    name = getattr(request, "site_time_zone", settings.TIME_ZONE)
    offset = timezone.localtime().strftime("%z")
    return {"site_time_zone": name, "site_utc_offset": f"{offset[:3]}:{offset[3:]}" if offset else ""}
