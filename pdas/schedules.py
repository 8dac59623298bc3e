"""Every periodic task of PDAS, declared once.

The entries are created in django-celery-beat's tables after ``migrate`` (so the admin can edit,
disable or re-time them); an existing entry for a task is never touched, and a deleted one comes
back at the next ``migrate`` — disable an entry to stop it. Times are ``settings.TIME_ZONE``.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    task: str
    minute: str
    hour: str
    day_of_week: str
    description: str
    day_of_month: str = "*"


DEFAULT_SCHEDULES: tuple[DefaultSchedule, ...] = (
    # Monday 06:00: last Monday..Sunday's first deliveries checked against the TPS and the archives.
    DefaultSchedule("Weekly loss scan (previous Monday to Sunday)", "lossdetect.tasks.run_scheduled_scans",
                    "0", "6", "1", "Scans the previous Monday..Sunday of every institution with an R&V source."),
    # Every night 01:00: every copy's presence, and tonight's share of the full checks (each copy re-hashed
    # within fixity_cycle_days, oldest first, within PDAS_FIXITY_NIGHTLY_SECONDS); bad copies repaired.
    DefaultSchedule("Nightly archive check", "archiver.tasks.check_archives_task",
                    "0", "1", "*", "Checks the archive copies on their targets and repairs missing or corrupt ones."),
    # Every night 03:00, after the check: originals whose quarantine time ran out are deleted, only while
    # their archive is safely stored, re-checked right before.
    DefaultSchedule("Nightly quarantine purge", "archiver.tasks.purge_quarantine_task",
                    "0", "3", "*", "Deletes quarantined originals past their retention; their archive stays."),
    # Every hour at :30: the watchdog raises (and clears) the alerts that fire on absence: no archive run, no
    # loss scan, checks behind their cycle, a target unreachable, an archive with no verified copy left.
    DefaultSchedule("Hourly watchdog", "reports.tasks.watchdog_task",
                    "30", "*", "*", "Raises an alert when an expected run, scan or check did not happen."),
    # The 2nd of each month, 04:00 (after the nightly check and purge): a restore drill per target, a random
    # archive restored into a scratch folder and compared with its manifest.
    DefaultSchedule("Monthly restore drill", "archiver.tasks.restore_drills_task",
                    "0", "4", "*", "Restores a random archive from each target into a scratch folder and compares it.",
                    day_of_month="2"),
    # Every 15 minutes: a job (archive run, restore, curation, loss scan, reconciliation) still queued or
    # running with no sign of life for PDAS_STALE_JOB_MINUTES lost its worker; it is closed as failed.
    DefaultSchedule("Stale-job sweep", "pdas.tasks.sweep_stale_jobs_task",
                    "*/15", "*", "*", "Closes as failed the jobs whose worker died (no progress for a while)."),
    # Every night 00:45: the audit log's head (a signed checkpoint) written to each institution's first enabled
    # target, off this host: rows cut off the end of the log since then are seen by verify_audit --checkpoints.
    DefaultSchedule("Nightly audit checkpoint", "audit.tasks.write_audit_checkpoint_task",
                    "45", "0", "*", "Writes the audit log's head to the storage targets, to show rows cut off later."),
)


def ensure_default_schedules(*, using: str = "default") -> list[str]:
    """Create the missing default entries; returns the names created."""
    from django.db import connections
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return []  # ``migrate`` of a single app that ran before django-celery-beat's tables exist
    created = []
    for entry in DEFAULT_SCHEDULES:
        if PeriodicTask.objects.using(using).filter(task=entry.task).exists():
            continue
        crontab, _ = CrontabSchedule.objects.using(using).get_or_create(
            minute=entry.minute, hour=entry.hour, day_of_week=entry.day_of_week, day_of_month=entry.day_of_month,
            month_of_year="*", timezone=settings.TIME_ZONE)
        PeriodicTask.objects.using(using).create(name=entry.name, task=entry.task, crontab=crontab,
                                                 description=entry.description)
        created.append(entry.name)
    return created
