"""Who did it: the one name the audit log and the job rows (``requested_by``, ``core.jobs``) give an actor.

An actor is
- a user: their user name (``anonymous`` for a user not logged in);
- a string, already a name: the archiving worker (``host:pid:task``), the operating-system account
  of a management command (``NAME (command line)``, from ``core.commands.cli_actor``), ``system``
  for mail, ``anonymous`` for a refused login;
- None: the scheduler (Celery beat), the only caller that acts for nobody.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

SCHEDULER = "scheduler"
SYSTEM = "system"
ANONYMOUS = "anonymous"

Actor = Union["AbstractBaseUser", "AnonymousUser", str, None]


def actor_name(actor: Actor) -> str:
    """The actor's name as stored; raises ``ValueError`` for an empty name and ``TypeError`` for
    anything that is neither a user, a string nor None (a bug, never a silent ``str(actor)``)."""
    if actor is None:
        return SCHEDULER
    if isinstance(actor, str):
        if not actor.strip():
            raise ValueError("an actor's name is empty")
        return actor
    get_username = getattr(actor, "get_username", None)
    if get_username is None:
        raise TypeError(f"an actor is a user, a name or None (the scheduler), not {type(actor).__name__}")
    return get_username() or ANONYMOUS
