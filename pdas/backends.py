"""The login backends: django-axes' lockout check, then Django's password check (settings.AUTHENTICATION_BACKENDS).

Each is its library's class with ``authenticate`` marked ``sensitive_variables()``. Django marks its own
``authenticate()`` for the ``credentials`` variable only, so an error inside a backend (the database
failing mid-login) put the backend's ``password`` variable into the 500 report mailed to the admins.
"""
from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.backends import ModelBackend
from django.views.decorators.debug import sensitive_variables


class LockoutBackend(AxesStandaloneBackend):
    """Refuses a locked (user name, address) pair or address before any password is checked (pdas/lockout.py)."""

    @sensitive_variables()
    def authenticate(self, request, username=None, password=None, **kwargs):
        return super().authenticate(request, username=username, password=password, **kwargs)


class PasswordBackend(ModelBackend):
    """Django's user name and password check."""

    @sensitive_variables()
    def authenticate(self, request, username=None, password=None, **kwargs):
        return super().authenticate(request, username=username, password=password, **kwargs)
