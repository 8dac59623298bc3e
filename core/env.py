"""Typed readers for settings that come from environment variables.

Each helper raises ``ImproperlyConfigured`` with a one-line message naming the variable, so a bad
value stops start-up instead of being guessed. ``secret()`` also reads ``NAME_FILE`` (Docker and
systemd credentials style) and never has a default.
"""
from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from connectors.errors import SecretError
from connectors.secrets import lookup_secret

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def string(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def boolean(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no)")


def integer(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def string_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


@sensitive_variables()  # no error report shows the value, here or in the lookup below
def secret(name: str) -> str | None:
    """Return the secret from ``NAME`` or from the file named by ``NAME_FILE``; None if neither."""
    try:
        return lookup_secret(name)
    except SecretError as exc:
        raise ImproperlyConfigured(str(exc)) from None


@sensitive_variables()
def required_secret(name: str) -> str:
    value = secret(name)
    if not value:
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set in production")
    return value
