"""The base of every PDAS management command: errors reach the user as one line, never a traceback.

Exit codes (docs/contracts.md §7): 0 success, 1 findings that need a person (raise ``Findings``),
2 bad input or configuration (``CommandError(..., returncode=2)``, and any database or unexpected
error, which is also logged in full for the administrator).
"""
from __future__ import annotations

import getpass
import json
import logging

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

log = logging.getLogger("core.commands")


def cli_actor() -> str:
    """Who runs a command, for the audit log: the login name of the shell."""
    try:
        return f"{getpass.getuser()} (command line)"
    except (KeyError, OSError):  # no login name in a bare container
        return "command line"


def dumps_json(data) -> str:
    """The ``--json`` output of a command: UTF-8 names as they are (Chinese stays readable), indented,
    dates and other values as text."""
    return json.dumps(data, ensure_ascii=False, indent=1, default=str)


class Findings(Exception):
    """The command worked and found something a person must look at: exit status 1."""


class PdasCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except Findings:
            raise SystemExit(1) from None
        except (CommandError, SystemExit, KeyboardInterrupt):
            raise
        except DatabaseError as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"database error: {first_line} (is the database migrated? "
                               "run 'manage.py migrate')", returncode=2) from None
        except Exception as exc:
            log.exception("%s failed", self.__class__.__module__)
            raise CommandError(f"{type(exc).__name__}: {exc}", returncode=2) from None
