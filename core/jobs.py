"""One vocabulary for job rows: archive runs, restores, curations, loss scans and reconciliations.

Every job is a row with the same columns (``JobRow``): who asked for it (``requested_by``: a user
name, ``scheduler`` or ``NAME (command line)``), its ``status`` (``queued`` -> ``running`` -> ``done``
or ``failed``; a job may add its own, such as a restore's ``refused``), when it was created, started
and finished, the last sign of life of the worker doing it (``heartbeat_at``), and ``error``, the
one line that says why it failed.

And the same verbs in each app's services: ``create_<job>`` writes the ``queued`` row, ``execute_<job>``
does the work of a created row (what a task calls), ``run_<job>`` does both at once (what a command
calls). Pages create the row and hand its id to ``core.dispatch``.

A job that stays unfinished with no sign of life for ``PDAS_STALE_JOB_MINUTES`` belongs to a worker
that died: ``JobRow.objects.stale()`` is the one answer to "is this job stale?", and the sweep on
beat (``pdas.services.jobs``) closes such rows as failed.
"""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

INTERRUPTED = "interrupted: no worker finished it"


class JobStatus(models.TextChoices):
    """The statuses every job has. A model that needs more declares its own ``Status`` with these
    four values plus its own (an enum with members cannot be extended)."""

    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)


def stale_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(minutes=settings.PDAS_STALE_JOB_MINUTES)


class JobQuerySet(models.QuerySet):
    def unfinished(self):
        return self.filter(status__in=UNFINISHED)

    def with_last_sign_of_life(self):
        return self.annotate(last_sign_of_life=Coalesce("heartbeat_at", "started_at", "created_at"))

    def stale(self, now: dt.datetime | None = None):
        """Unfinished jobs with no sign of life since ``PDAS_STALE_JOB_MINUTES`` before ``now``."""
        return self.unfinished().with_last_sign_of_life().filter(last_sign_of_life__lt=stale_cutoff(now))


class JobRow(models.Model):
    """The columns and verbs every job row shares (see the module docstring)."""

    requested_by = models.CharField(verbose_name=_("Requested by"),
                                    max_length=150, help_text=_("User name, 'scheduler', or the command-line account"))
    status = models.CharField(verbose_name=_("Status"),
                              max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    created_at = models.DateTimeField(verbose_name=_("Created"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(verbose_name=_("Started"),
                                      null=True, blank=True, help_text=_("When a worker began the work"))
    finished_at = models.DateTimeField(verbose_name=_("Finished"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(verbose_name=_("Last sign of life"), null=True, blank=True,
                                        help_text=_("Last sign of life of the worker doing the job"))
    error = models.TextField(verbose_name=_("Error"),
                             blank=True, help_text=_("Why the job failed; blank while it has not"))

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} #{self.pk}"

    @property
    def finished(self) -> bool:
        """Done, failed (or a status of the job's own, such as refused): the status says, not the clock."""
        return self.status not in UNFINISHED

    @property
    def duration(self) -> dt.timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def mark_running(self) -> None:
        """A worker begins (or, after a redelivery, resumes) the work: ``running``, ``started_at`` kept
        from a first attempt. A finished job is left alone."""
        now = timezone.now()
        self.status, self.started_at, self.heartbeat_at = JobStatus.RUNNING, self.started_at or now, now
        type(self).objects.unfinished().filter(pk=self.pk).update(
            status=self.status, started_at=self.started_at, heartbeat_at=now)

    def close_interrupted(self, *, reason: str = INTERRUPTED, now: dt.datetime | None = None) -> bool:
        """Close an unfinished job whose worker is gone as ``failed`` with ``reason``; False when it
        finished (or showed a sign of life) meanwhile. The caller audits it."""
        now = now or timezone.now()
        closed = type(self).objects.stale(now).filter(pk=self.pk).update(
            status=JobStatus.FAILED, error=reason, finished_at=now)
        if closed:
            self.status, self.error, self.finished_at = JobStatus.FAILED, reason, now
        return bool(closed)

    def status_json(self) -> dict:
        """What a page's poll needs (``pdas/static/pdas/job-status.js``): no patient data."""
        return {"id": self.pk, "status": self.status, "status_display": self.get_status_display(),
                "finished": self.finished, "error": self.error}
