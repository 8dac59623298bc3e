"""Login lockout: per (user name, address) pair, and a looser limit per address (django-axes handler).

Locking a user name alone would let anyone who knows it keep that person out: a few wrong passwords
from any workstation, every half hour. So the failures that count against a name are those from one
address (``AXES_LOCKOUT_PARAMETERS``: the pair): the person still logs in from their own workstation.
An address that fails ``PDAS_LOGIN_ADDRESS_FAILURE_LIMIT`` times in the lockout time, whatever the
names, is locked for every name: one address cannot try a password on many names. The address is
the one ``core.client`` reads (through ``PDAS_PROXY_COUNT`` proxies).

A successful login clears the failures of its own pair only (axes resets what the lockout
parameters select), so a user's own login does not wipe the count of other names tried from there.
"""
from __future__ import annotations

import math

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.shortcuts import render


def address_failures(request) -> int:
    """Failed logins from the request's address within the lockout time, over every user name."""
    recent = AccessAttempt.objects.filter(ip_address=request.axes_ip_address,
                                          attempt_time__gte=get_cool_off_threshold(request))
    return recent.aggregate(total=Sum("failures_since_start"))["total"] or 0


class PairLockoutHandler(AxesDatabaseHandler):
    """axes' database handler, counting the (name, address) pair and, separately, the address."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        """The pair's failures; the failure limit itself once the address has reached its own limit, which
        locks that address for every name (axes compares this number with ``AXES_FAILURE_LIMIT``)."""
        pair = super().get_failures(request, credentials)
        if address_failures(request) >= settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(pair, get_failure_limit(request, credentials))
        return pair


def pair_failures(request, username: str) -> int:
    """Failed logins of ``username`` from the request's address within the lockout time."""
    recent = AccessAttempt.objects.filter(ip_address=getattr(request, "axes_ip_address", None), username=username,
                                          attempt_time__gte=get_cool_off_threshold(request))
    return recent.aggregate(total=Sum("failures_since_start"))["total"] or 0


def lockout_minutes(request) -> int:
    cool_off = get_cool_off(request)
    return math.ceil(cool_off.total_seconds() / 60) if cool_off else 0


def lockout_response(request, original_response=None, credentials=None):
    """The locked-out page, saying what was locked (this name at this workstation, or this workstation for
    every name) and for how many minutes (``AXES_LOCKOUT_CALLABLE``)."""
    by_address = address_failures(request) >= settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT
    context = {"username": get_client_username(request, credentials) or "", "by_address": by_address,
               "failure_limit": settings.PDAS_LOGIN_ADDRESS_FAILURE_LIMIT if by_address
               else get_failure_limit(request, credentials), "minutes": lockout_minutes(request)}
    return render(request, "registration/locked_out.html", context, status=429)
