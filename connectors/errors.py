"""The one error type of every connector: each protocol family raises its subclass."""
from __future__ import annotations


class ConnectorError(Exception):
    """Talking to an outside system failed. ``retryable``: a later try may succeed (network, busy, timeout);
    False means trying again cannot help until something is changed (configuration, permissions, data)."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class SecretError(ConnectorError):
    """A secret the configuration names is not there (or its file cannot be read)."""


def unforeseen(exc: BaseException, *, secret: str | None = None) -> str:
    """An exception no branch expected, as one line for a message: its type and text, with ``secret`` taken
    out should a library have put it there."""
    text = " ".join(str(exc).split())
    if secret:
        text = text.replace(secret, "***")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
