"""The one secret lookup: a configuration names an environment variable, never the secret itself.

``NAME`` holds the secret, or ``NAME_FILE`` names a file holding it (systemd credentials, Docker
secrets). Every opener and the site-configuration checks use this, so what connects is exactly what
the loader accepts. Values are never logged or put into messages.

Django's error reports would show the value held in a variable here; ``connectors`` is a plain library
without Django, so the callers mark themselves ``sensitive_variables()`` (``sites.connections``,
``core.env``, the site rules), which hides the variables of every frame they call, these included.
"""
from __future__ import annotations

import os
from pathlib import Path

from connectors.errors import SecretError


def lookup_secret(name: str) -> str | None:
    """The secret from ``NAME`` or from the file ``NAME_FILE`` names; None when neither is set.

    An unreadable ``NAME_FILE`` raises ``SecretError`` naming the variable and the file.
    """
    value = os.environ.get(name)
    if value:
        return value
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"{name}_FILE={file_name}: {exc.strerror}") from None
    return None


def require_secret(name: str, *, what: str) -> str:
    """The secret ``name`` holds; ``SecretError`` saying ``what`` needs it when neither form is set."""
    value = lookup_secret(name)
    if value is None:
        raise SecretError(f"{what}: {name} is not set (nor {name}_FILE)")
    return value


def secret_problem(name: str) -> str | None:
    """Why the secret ``name`` cannot be read here, or None when it can (for configuration checks)."""
    try:
        value = lookup_secret(name)
    except SecretError as exc:
        return str(exc)
    if value is None:
        return f"{name} is not set (nor {name}_FILE)"
    return None
