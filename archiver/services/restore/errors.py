"""What a restore raises: one-line messages, with the command's exit status on each kind."""
from __future__ import annotations

from archiver.models import RestoreRecord


class RestoreError(Exception):
    """The restore did not happen (or was undone); the message is one line.

    ``exit_code`` is the command's exit status: 2 for a request that cannot be carried out
    (unknown, ambiguous, destination exists, a target or the TPS unreachable, a full disk), 1 when
    no copy of the archive passed verification (a person must look at the storage).
    """

    exit_code = 2

    def __init__(self, message: str, *, record: RestoreRecord | None = None):
        super().__init__(message)
        self.record = record


class RestoreRefused(RestoreError):
    """Not safe to do as asked: the destination exists, or the request names no single patient."""


class ArchiveIntegrityError(RestoreError):
    """No copy of the archive is whole, or its members break the rules: nothing was written."""

    exit_code = 1
